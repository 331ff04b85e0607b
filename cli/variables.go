package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/taskgate/taskgate/workload"
)

const usageVariables = "variables set KEY VALUE [--description TEXT] | get KEY | list | delete KEY  [--server URL]"

// variablesCommand is `taskgate variables set|get|list|delete`.
func (e *cliEnv) variablesCommand() *cobra.Command {
	cmd := groupCommand("variables", "Manage variables", func() error { return usagef("usage: taskgate %s", usageVariables) })

	set := &cobra.Command{
		Use:   "set KEY VALUE",
		Short: "Create or replace a variable",
		Args:  exactArgs(2, "variables set KEY VALUE [--description TEXT]"),
	}
	setServer := serverFlag(set)
	desc := set.Flags().String("description", "", "description")
	set.RunE = func(cmd *cobra.Command, args []string) error {
		v := workload.Variable{Key: args[0], Value: &args[1]}
		if *desc != "" {
			v.Description = desc
		}
		return e.withBackend(*setServer, func(b operatorBackend) error { return b.PutVariable(cmd.Context(), v) })
	}

	get := &cobra.Command{
		Use:   "get KEY",
		Short: "Print a variable's value",
		Args:  exactArgs(1, "variables get KEY"),
	}
	getServer := serverFlag(get)
	get.RunE = func(cmd *cobra.Command, args []string) error {
		return e.withBackend(*getServer, func(b operatorBackend) error {
			v, err := b.Variable(cmd.Context(), args[0])
			if err != nil {
				return notFound(err, "variable %q", args[0])
			}
			if v.Value != nil {
				fmt.Fprintln(e.stdout, *v.Value)
			}
			return nil
		})
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "Print every variable's key",
		Args:  exactArgs(0, "variables list"),
	}
	listServer := serverFlag(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		return e.withBackend(*listServer, func(b operatorBackend) error {
			vs, err := b.Variables(cmd.Context())
			if err != nil {
				return err
			}
			for _, v := range vs {
				fmt.Fprintln(e.stdout, v.Key)
			}
			return nil
		})
	}

	del := &cobra.Command{
		Use:   "delete KEY",
		Short: "Delete a variable",
		Args:  exactArgs(1, "variables delete KEY"),
	}
	delServer := serverFlag(del)
	del.RunE = func(cmd *cobra.Command, args []string) error {
		return e.withBackend(*delServer, func(b operatorBackend) error {
			return notFound(b.DeleteVariable(cmd.Context(), args[0]), "variable %q", args[0])
		})
	}

	cmd.AddCommand(set, get, list, del)
	return cmd
}
