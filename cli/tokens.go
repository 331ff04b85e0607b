package cli

import (
	"strings"
	"time"

	"github.com/spf13/cobra"
)

const usageTokens = "tokens revoke JTI [--exp RFC3339]  [--server URL]"

// tokensCommand is `taskgate tokens revoke`: revoke a token — REST, task
// (execution or workload) or component — by its jti.
func (e *cliEnv) tokensCommand() *cobra.Command {
	cmd := groupCommand("tokens", "Revoke tokens", func() error { return usagef("usage: taskgate %s", usageTokens) })
	revoke := &cobra.Command{
		Use:   "revoke JTI",
		Short: "Revoke a token: REST, execution, workload or component",
		Args:  exactArgs(1, usageTokens),
	}
	server := serverFlag(revoke)
	expFlag := revoke.Flags().String("exp", "", "the token's expiry (RFC 3339); default: the longest token lifetime from now")
	revoke.RunE = func(cmd *cobra.Command, args []string) error {
		if jti := args[0]; strings.TrimSpace(jti) == "" || len(jti) > 128 {
			return usagef("tokens revoke: the jti must be 1 to 128 characters")
		}
		var exp *time.Time
		if *expFlag != "" {
			t, err := time.Parse(time.RFC3339, *expFlag)
			if err != nil {
				return usagef("tokens revoke: --exp: %v", err)
			}
			exp = &t
		}
		return e.withBackend(*server, func(b operatorBackend) error { return b.Revoke(cmd.Context(), args[0], exp) })
	}
	cmd.AddCommand(revoke)
	return cmd
}
