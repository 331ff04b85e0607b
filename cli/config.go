package cli

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"
)

// configCommand is `taskgate config list`.
func (e *cliEnv) configCommand() *cobra.Command {
	usage := func() error { return usagef("config: expected \"list\"") }
	cmd := groupCommand("config", "Show the configuration", usage)
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "Print the effective configuration, secrets redacted",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usage()
			}
			return nil
		},
		RunE: func(*cobra.Command, []string) error { return e.configList() },
	})
	return cmd
}

// configList prints the effective configuration, secrets redacted.
func (e *cliEnv) configList() error {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	red := cfg.Redacted()
	keys := make([]string, 0, len(red))
	for k := range red {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(e.stdout, "%s = %s\n", k, red[k])
	}
	return nil
}
