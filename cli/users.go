package cli

import (
	"bufio"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/taskgate/taskgate/auth"
)

const usageUsers = "users add NAME --role admin|op|viewer [--password-stdin] | list | remove NAME  [--server URL]"

// usersCommand is `taskgate users add|list|remove`.
func (e *cliEnv) usersCommand() *cobra.Command {
	cmd := groupCommand("users", "Manage the users of the REST API", func() error { return usagef("usage: taskgate %s", usageUsers) })

	const usageAdd = "users add NAME --role admin|op|viewer [--password-stdin]"
	add := &cobra.Command{
		Use:   "add NAME --role admin|op|viewer",
		Short: "Add a user; the password is read from standard input or asked for",
		Args:  exactArgs(1, usageAdd),
	}
	addServer := serverFlag(add)
	roleFlag := add.Flags().String("role", "", "admin, op or viewer (required)")
	fromStdin := add.Flags().Bool("password-stdin", false, "read the password from the first line of standard input")
	add.RunE = func(cmd *cobra.Command, args []string) error {
		role, err := auth.ParseRole(*roleFlag)
		if err != nil {
			return usagef("usage: taskgate %s", usageAdd)
		}
		if err := auth.ValidUserName(args[0]); err != nil {
			return usagef("users add: %v", err)
		}
		// The backend is opened first: no password is asked for that
		// could not be stored.
		return e.withBackend(*addServer, func(b operatorBackend) error {
			pw, err := e.readPassword(bufio.NewReader(e.stdin), *fromStdin, true)
			if err != nil {
				return err
			}
			if _, err := b.AddUser(cmd.Context(), args[0], role, pw); errors.Is(err, errExists) {
				return fmt.Errorf("user %q already exists", args[0])
			} else if err != nil {
				return err
			}
			return nil
		})
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "Print every user",
		Args:  exactArgs(0, "users list"),
	}
	listServer := serverFlag(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		return e.withBackend(*listServer, func(b operatorBackend) error {
			us, err := b.Users(cmd.Context())
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(us))
			for _, u := range us {
				rows = append(rows, []string{u.Name, string(u.Role), formatTime(&u.CreatedAt)})
			}
			return table(e.stdout, "NAME\tROLE\tCREATED", rows)
		})
	}

	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user; what they queued or registered that no worker started ends too",
		Args:  exactArgs(1, "users remove NAME"),
	}
	removeServer := serverFlag(remove)
	remove.RunE = func(cmd *cobra.Command, args []string) error {
		return e.withBackend(*removeServer, func(b operatorBackend) error {
			_, err := b.RemoveUser(cmd.Context(), args[0])
			return notFound(err, "user %q", args[0])
		})
	}

	cmd.AddCommand(add, list, remove)
	return cmd
}
