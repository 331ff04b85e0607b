package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/internal/atomicfile"
	"github.com/taskgate/taskgate/operator"
)

const usageComponents = "components register triggerer|dag-processor NAME --token-file PATH | list | remove ID  [--server URL]"

// componentsCommand is `taskgate components register|list|remove`.
func (e *cliEnv) componentsCommand() *cobra.Command {
	cmd := groupCommand("components", "Manage triggerers and dag processors", func() error { return usagef("usage: taskgate %s", usageComponents) })

	const usageRegister = "components register triggerer|dag-processor NAME --token-file PATH"
	register := &cobra.Command{
		Use:   "register triggerer|dag-processor NAME --token-file PATH",
		Short: "Register a component; write its execution token to a file and print its id",
		Args:  exactArgs(2, usageRegister),
	}
	registerServer := serverFlag(register)
	tokenFile := register.Flags().String("token-file", "", "where to write the component's token (mode 0600; required)")
	register.RunE = func(cmd *cobra.Command, args []string) error {
		kind, err := auth.ParseComponentKind(args[0])
		if err != nil || *tokenFile == "" {
			return usagef("usage: taskgate %s", usageRegister)
		}
		return e.withBackend(*registerServer, func(b operatorBackend) error {
			out, err := atomicfile.Prepare(*tokenFile)
			if err != nil {
				return err
			}
			defer out.Abort()
			comp, tok, err := b.RegisterComponent(cmd.Context(), kind, args[1])
			if errors.Is(err, errExists) {
				return fmt.Errorf("a %s named %q is already registered", kind, args[1])
			} else if err != nil {
				return err
			}
			if err := out.Commit([]byte(tok)); err != nil {
				return fmt.Errorf("component %s is registered but its token was not saved (%w): "+
					"remove it with `taskgate components remove %s` and register it again", comp.ID, err, comp.ID)
			}
			fmt.Fprintln(e.stdout, comp.ID)
			return nil
		})
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "Print every component",
		Args:  exactArgs(0, "components list"),
	}
	listServer := serverFlag(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		return e.withBackend(*listServer, func(b operatorBackend) error {
			cs, err := b.Components(cmd.Context())
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(cs))
			for _, c := range cs {
				rows = append(rows, []string{c.ID, string(c.Kind), c.Name, formatTime(&c.CreatedAt)})
			}
			return table(e.stdout, "ID\tKIND\tNAME\tCREATED", rows)
		})
	}

	remove := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a component; its token is no longer renewed",
		Args:  exactArgs(1, "components remove ID"),
	}
	removeServer := serverFlag(remove)
	remove.RunE = func(cmd *cobra.Command, args []string) error {
		return e.withBackend(*removeServer, func(b operatorBackend) error {
			return notFound(b.RemoveComponent(cmd.Context(), args[0]), "component %q", args[0])
		})
	}

	cmd.AddCommand(register, list, remove, e.dagProcessorSessionCommand())
	return cmd
}

// dagProcessorSessionCommand is `taskgate components dag-processor-session`:
// the trusted provisioning of a DAG processor (Airflow's
// generate_dag_processor_session_token and write_token_file). Unlike
// `register`, it stores nothing and can be repeated: minting again with
// --session-id renews the session's credential before it expires, and the
// session keeps its Job.
func (e *cliEnv) dagProcessorSessionCommand() *cobra.Command {
	const usage = "components dag-processor-session --bundle NAME [--bundle NAME…] [--session-id ID] [--valid-for DURATION] --token-file PATH"
	cmd := &cobra.Command{
		Use:   "dag-processor-session --bundle NAME [--session-id ID] [--valid-for DURATION] --token-file PATH",
		Short: "Mint a DAG processor's session token (exchanged at POST /execution/jobs); print the session id",
		Args:  exactArgs(0, usage),
	}
	server := serverFlag(cmd)
	var r operator.DagProcessorSessionRequest
	fs := cmd.Flags()
	fs.StringArrayVar(&r.BundleNames, "bundle", nil, "a DAG bundle the session may parse (repeatable; at least one)")
	fs.StringVar(&r.SessionID, "session-id", "", "renew this session instead of starting a new one")
	fs.DurationVar(&r.ValidFor, "valid-for", operator.DefaultDagProcessorSessionLifetime, "the token's life")
	tokenFile := fs.String("token-file", "", "where to write the session token (mode 0600, replaced atomically; required)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if len(r.BundleNames) == 0 || *tokenFile == "" {
			return usagef("usage: taskgate %s", usage)
		}
		return e.withBackend(*server, func(b operatorBackend) error {
			out, err := atomicfile.Prepare(*tokenFile)
			if err != nil {
				return err
			}
			defer out.Abort()
			sess, err := b.MintDagProcessorSession(cmd.Context(), r)
			if err != nil {
				return err
			}
			if err := out.Commit([]byte(sess.Token)); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, sess.SessionID)
			return nil
		})
	}
	return cmd
}
