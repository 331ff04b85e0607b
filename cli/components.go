package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/internal/atomicfile"
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

	cmd.AddCommand(register, list, remove)
	return cmd
}
