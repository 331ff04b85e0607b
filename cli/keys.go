package cli

// The signing key set: where its first key comes from, how serve and the
// offline commands build their signers and validators on it, and
// `taskgate keys list|rotate|retire`.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/taskgate/taskgate/config"
	"github.com/taskgate/taskgate/operator"
	"github.com/taskgate/taskgate/tokens"
)

const usageKeys = "keys list | rotate | retire KID [--force]  [--server URL]"

// openKeys loads the store's signing key set (see tokens.Manager). Its
// first key, and a key rotated in through the configuration, is the
// configured one: [api_auth] jwt_secret or jwt_private_key_path, else, with
// an asymmetric jwt_algorithm, a key generated into the set, else the data
// directory's generated jwt_secret.
func openKeys(ctx context.Context, cfg *config.Config, db tokens.KeyStore, now func() time.Time, log *zap.Logger) (*tokens.Manager, error) {
	kc := tokens.Config{
		Secret: []byte(cfg.JWTSecret), PrivateKeyPath: cfg.JWTPrivateKeyPath,
		Algorithm: cfg.JWTAlgorithm, KID: cfg.JWTKID, Audiences: cfg.ExecutionAudiences,
	}
	generate := ""
	switch cfg.JWTAlgorithm {
	case "", "GUESS", "HS512":
	default:
		generate = cfg.JWTAlgorithm
	}
	mc := tokens.ManagerConfig{Store: db, Algorithm: generate, Longest: longestTokenLife(cfg), Now: now}
	if cfg.JWTSecret == "" && cfg.JWTPrivateKeyPath == "" && generate == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		path := filepath.Join(cfg.DataDir, "jwt_secret")
		secret, created, err := tokens.LoadOrCreateSecret(path)
		if err != nil {
			return nil, err
		}
		kc.Secret = secret
		log.Info("using the data directory's jwt secret", zap.String("path", path), zap.Bool("created", created),
			zap.String("secret_fp", tokens.Fingerprint(string(secret))))
	}
	if len(kc.Secret) > 0 || kc.PrivateKeyPath != "" {
		k, err := tokens.ConfiguredKey(kc)
		if err != nil {
			return nil, err
		}
		mc.Configured = &k
	}
	m, err := tokens.OpenKeys(ctx, mc)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	return m, nil
}

// longestTokenLife is how long after a key stops signing a token it signed
// may still be valid: the longest lifetime of any token signed with the
// set, plus the leeway validators give an exp.
func longestTokenLife(cfg *config.Config) time.Duration {
	return max(cfg.ExecutionTokenLifetime, cfg.WorkloadTokenLifetime, cfg.APITokenLifetime, cfg.APICLITokenLifetime) +
		cfg.JWTLeeway
}

// tokenConfig is the configuration of task-token signers and validators on
// the key ring; REST tokens use the same with the REST audiences.
func tokenConfig(cfg *config.Config, ring *tokens.KeyRing, now func() time.Time) tokens.Config {
	return tokens.Config{
		Ring:           ring,
		Algorithm:      cfg.JWTAlgorithm,
		Issuers:        cfg.JWTIssuers,
		Audiences:      cfg.ExecutionAudiences,
		Leeway:         cfg.JWTLeeway,
		TrustedJWKSURL: cfg.TrustedJWKSURL,
		JWKSRefresh:    cfg.JWKSRefresh,
		JWKSRetry:      cfg.JWKSRetry,
		Now:            now,
	}
}

// keyAdmin is the key manager as the operator use cases see it.
type keyAdmin struct{ m *tokens.Manager }

var _ operator.KeyManager = keyAdmin{}

func (k keyAdmin) Keys(context.Context) ([]operator.SigningKey, error) {
	return signingKeys(k.m.List()), nil
}

func (k keyAdmin) RotateKey(ctx context.Context) ([]operator.SigningKey, error) {
	ks, err := k.m.Rotate(ctx)
	return signingKeys(ks), err
}

func (k keyAdmin) RetireKey(ctx context.Context, kid string, force bool) ([]operator.SigningKey, error) {
	ks, err := k.m.Retire(ctx, kid, force)
	switch {
	case errors.Is(err, tokens.ErrKeyNotFound):
		return nil, &operator.Error{Kind: operator.ErrNotFound, Field: "kid", Err: err}
	case errors.Is(err, tokens.ErrKeyActive), errors.Is(err, tokens.ErrKeyInUse):
		return nil, &operator.Error{Kind: operator.ErrInvalid, Field: "kid", Err: err}
	}
	return signingKeys(ks), err
}

// JWKS is the public keys the gateway publishes.
func (k keyAdmin) JWKS() []byte { return k.m.Ring().JWKS() }

func signingKeys(ks []tokens.KeyInfo) []operator.SigningKey {
	if ks == nil {
		return nil
	}
	out := make([]operator.SigningKey, len(ks))
	for i, k := range ks {
		out[i] = operator.SigningKey{KID: k.KID, Algorithm: k.Algorithm, Active: k.Active, Created: k.Created,
			Replaced: k.Replaced, RetireAfter: k.RetireAfter}
	}
	return out
}

// keysCommand is `taskgate keys list|rotate|retire`.
func (e *cliEnv) keysCommand() *cobra.Command {
	cmd := groupCommand("keys", "Manage the signing keys", func() error { return usagef("usage: taskgate %s", usageKeys) })

	list := &cobra.Command{
		Use:   "list",
		Short: "Print the signing keys, the active one first, with when each may be retired",
		Args:  exactArgs(0, "keys list"),
	}
	listServer := serverFlag(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		return e.withBackend(*listServer, func(b operatorBackend) error {
			ks, err := b.Keys(cmd.Context())
			if err != nil {
				return err
			}
			return e.printKeys(ks)
		})
	}

	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new key the signing key; the old one verifies until its tokens have expired",
		Args:  exactArgs(0, "keys rotate"),
	}
	rotateServer := serverFlag(rotate)
	rotate.RunE = func(cmd *cobra.Command, _ []string) error {
		return e.withBackend(*rotateServer, func(b operatorBackend) error {
			ks, err := b.RotateKey(cmd.Context())
			if err != nil {
				return err
			}
			return e.printKeys(ks)
		})
	}

	const usageRetire = "keys retire KID [--force]"
	retire := &cobra.Command{
		Use:   "retire KID",
		Short: "Drop a key that no longer signs; refused while its tokens may be valid, unless --force",
		Args:  exactArgs(1, usageRetire),
	}
	retireServer := serverFlag(retire)
	force := retire.Flags().Bool("force", false, "retire the key even though tokens it signed may still be valid (they stop working)")
	retire.RunE = func(cmd *cobra.Command, args []string) error {
		return e.withBackend(*retireServer, func(b operatorBackend) error {
			ks, err := b.RetireKey(cmd.Context(), args[0], *force)
			if errors.Is(err, operator.ErrNotFound) {
				return fmt.Errorf("no signing key %q", args[0])
			} else if err != nil {
				return err
			}
			return e.printKeys(ks)
		})
	}
	cmd.AddCommand(list, rotate, retire)
	return cmd
}

func (e *cliEnv) printKeys(ks []operator.SigningKey) error {
	rows := make([][]string, 0, len(ks))
	for _, k := range ks {
		state := "verifies"
		if k.Active {
			state = "active"
		}
		rows = append(rows, []string{k.KID, k.Algorithm, state, formatTime(&k.Created), formatTime(k.Replaced), formatTime(k.RetireAfter)})
	}
	return table(e.stdout, "KID\tALG\tSTATE\tCREATED\tREPLACED\tRETIRE AFTER", rows)
}
