package cli

// Encryption of connection secrets at rest: the cipher the store is opened
// with, and `taskgate connections rotate-key`.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/taskgate/taskgate/config"
	"github.com/taskgate/taskgate/fernet"
)

// fernetKeyFile is the key the data directory keeps when [core] fernet_key
// is not set.
const fernetKeyFile = "fernet_key"

// connectionCipher builds the cipher for connection passwords and extras:
// the [core] fernet_key keys when configured (the first encrypts, all
// decrypt), else the key in <data_dir>/fernet_key, created on first use and
// reused afterwards — like the JWT secret, a key made per process would
// leave every secret stored by the previous one unreadable.
func connectionCipher(cfg *config.Config) (*fernet.MultiKey, error) {
	if len(cfg.FernetKeys) > 0 {
		return configuredCipher(cfg)
	}
	key, _, err := fernet.LoadOrCreateKeyFile(filepath.Join(cfg.DataDir, fernetKeyFile))
	if err != nil {
		return nil, err
	}
	return fernet.NewMulti(key)
}

// rotateConnectionKey is `taskgate connections rotate-key`: re-encrypt every
// connection's password and extra with the first configured key, as
// `airflow rotate-fernet-key` does. On the data directory it works offline
// only (a running server holds it), because the server's keys are the ones
// in its own configuration; on Airflow's metadata database it re-encrypts
// every encrypted variable and connection field, as Airflow's command does.
// To rotate: set [core] fernet_key to "NEW,OLD" (OLD being the current key,
// or the content of <data_dir>/fernet_key), run this, then set it to "NEW"
// alone.
func (e *cliEnv) rotateConnectionKey(ctx context.Context) (err error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	// The store to rotate, and what the message says was rotated.
	var db interface {
		RotateSecrets(ctx context.Context) (int, error)
		Close() error
	}
	var what string
	if cfg.DatabaseURL != "" {
		if len(cfg.FernetKeys) == 0 {
			return errors.New("[core] fernet_key is not set: Airflow's variables and connections are stored in clear, there is nothing to rotate")
		}
		pg, err := openPostgres(ctx, cfg, time.Now)
		if err != nil {
			return err
		}
		db = pg
		what = fmt.Sprintf("variable and connection values (and taskgate's signing key set) in Airflow's database "+
			"with the first of %d [core] fernet_key keys", len(cfg.FernetKeys))
	} else {
		st, err := openStore(cfg, time.Now)
		if err != nil {
			return err
		}
		db = st
		source := filepath.Join(cfg.DataDir, fernetKeyFile)
		if len(cfg.FernetKeys) > 0 {
			source = fmt.Sprintf("[core] fernet_key (first of %d)", len(cfg.FernetKeys))
		}
		what = "connections with the key of " + source
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	n, err := db.RotateSecrets(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "re-encrypted %d %s\n", n, what)
	return err
}
