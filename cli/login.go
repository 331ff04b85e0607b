package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/taskgate/taskgate/internal/atomicfile"
)

const usageLogin = "login --server URL [--username NAME] [--password-stdin]"

// loginCommand is `taskgate login`.
func (e *cliEnv) loginCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "login --server URL",
		Short: "Store a REST token for the provisioning commands",
		Long: "Exchange a user name and password for a CLI token (POST /auth/token/cli) and store it with\n" +
			"the server's URL in $" + envCredentials + " (default <user config dir>/taskgate/credentials.json).",
		Args: exactArgs(0, usageLogin),
	}
	server := cmd.Flags().String("server", "", "URL of the taskgate server (default: the one logged in to)")
	username := cmd.Flags().String("username", "", "user name (default: asked for)")
	fromStdin := cmd.Flags().Bool("password-stdin", false, "read the password from the first line of standard input")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return e.login(cmd.Context(), *server, *username, *fromStdin)
	}
	return cmd
}

// login exchanges a user name and password for a CLI token (POST
// /auth/token/cli) and stores it with the server's URL.
func (e *cliEnv) login(ctx context.Context, server, username string, fromStdin bool) error {
	path, err := e.credentialsPath()
	if err != nil {
		return err
	}
	if server == "" {
		// Logging in again to the same server needs no --server.
		if creds, err := loadCredentials(path); err == nil && creds != nil {
			server = creds.Server
		} else {
			return usagef("usage: taskgate %s", usageLogin)
		}
	}
	srv, err := normalizeServer(server)
	if err != nil {
		return err
	}
	in := bufio.NewReader(e.stdin)
	if username == "" {
		if fromStdin || !isTerminal(e.stdin) {
			return usagef("login: --username is required when the password comes from standard input")
		}
		fmt.Fprint(e.stderr, "Username: ")
		if username, err = readLine(in); err != nil {
			return fmt.Errorf("read the user name: %w", err)
		}
	}
	if u, _ := url.Parse(srv); u.Scheme == "http" && !isLoopback(u.Hostname()) {
		fmt.Fprintf(e.stderr, "taskgate: warning: %s is plain HTTP; the password and the token cross the network unencrypted\n", srv)
	}
	pw, err := e.readPassword(in, fromStdin, false)
	if err != nil {
		return err
	}
	api := newAPIClient(srv, "", "")
	var out struct {
		AccessToken string `json:"access_token"`
	}
	err = api.do(ctx, http.MethodPost, "/auth/token/cli", nil, map[string]string{"username": username, "password": pw}, &out)
	var aerr *apiError
	switch {
	case errors.As(err, &aerr) && aerr.Status == http.StatusUnauthorized:
		return errors.New("login refused: invalid username or password")
	case err != nil:
		return err
	case out.AccessToken == "":
		return fmt.Errorf("%s answered the login without a token", srv)
	}
	if err := saveCredentials(path, credentials{Server: srv, Token: out.AccessToken}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Logged in to %s as %s.\n", srv, username)
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// logoutCommand is `taskgate logout`.
func (e *cliEnv) logoutCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Revoke the stored REST token and delete it",
		Args:  exactArgs(0, "logout [--server URL]"),
	}
	server := cmd.Flags().String("server", "", "the server (with "+envToken+"; default: the one logged in to)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return e.logout(cmd.Context(), *server) }
	return cmd
}

// logout revokes the token on its server (POST /auth/logout) and deletes
// the credentials file. A token the server already refuses is as good as
// revoked; a server that cannot be reached keeps the file, so that logout
// can be retried: deleting it would leave a live token nobody can revoke.
func (e *cliEnv) logout(ctx context.Context, server string) error {
	api, err := e.remote(server)
	if err != nil {
		return err
	}
	if api == nil {
		return errors.New("not logged in")
	}
	err = api.do(ctx, http.MethodPost, "/auth/logout", nil, nil, nil)
	var aerr *apiError
	switch {
	case errors.As(err, &aerr) && aerr.Status == http.StatusUnauthorized:
		fmt.Fprintf(e.stderr, "taskgate: the server no longer accepted the token (%s)\n", aerr.Detail)
	case err != nil && api.source != envToken:
		return fmt.Errorf("%w; the token was not revoked and is kept (%s): run logout again once the server answers", err, api.source)
	case err != nil:
		return err
	}
	if api.source != envToken {
		path, err := e.credentialsPath()
		if err != nil {
			return err
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete the credentials: %w", err)
		}
		if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "Logged out of %s.\n", api.server)
	return nil
}
