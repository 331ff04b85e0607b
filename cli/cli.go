package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/taskgate/taskgate/config"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/tokens"
)

// cliEnv is what every command runs with.
type cliEnv struct {
	global  *global
	environ []string
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	// flags are config keys set on the command line ("section.key").
	flags map[string]string
}

func (e *cliEnv) setFlag(key, value string) {
	if e.flags == nil {
		e.flags = map[string]string{}
	}
	e.flags[key] = value
}

// loadConfig merges file, environment and flags.
func (e *cliEnv) loadConfig() (*config.Config, error) {
	if e.global.dataDir != "" {
		e.setFlag("taskgate.data_dir", e.global.dataDir)
	}
	return config.Load(config.Sources{File: e.global.configFile, Env: e.environ, Flags: e.flags})
}

// openStore opens the database in the data directory. A running server holds
// it; the message says so instead of hanging.
func openStore(cfg *config.Config, now func() time.Time) (*store.DB, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(cfg.DataDir, "taskgate.db")
	secrets, err := connectionCipher(cfg)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(path, store.Options{BatchDelay: cfg.BatchDelay, OpenTimeout: time.Second, Now: now, Secrets: secrets})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("data directory %s is in use by a running taskgate server; stop it first", cfg.DataDir)
	}
	return db, err
}

// newLogger builds the JSON logger at the configured level.
func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	return newLoggerTo(level, zapcore.Lock(zapcore.AddSync(w)))
}

func newLoggerTo(level string, ws zapcore.WriteSyncer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("[taskgate] log_level: %w", err)
	}
	return newJSONLogger(lvl, ws, new(millisecondTimes)), nil
}

// newJSONLogger is the JSON logger at lvl, its times encoded by times.
func newJSONLogger(lvl zapcore.Level, ws zapcore.WriteSyncer, times *millisecondTimes) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = times.encode
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), ws, lvl))
}

// millisecondTimes encodes log times as zapcore.ISO8601TimeEncoder does and
// keeps the text of the last millisecond: formatting a time was half of an
// access-log line's cost, and a busy server logs many lines per millisecond.
type millisecondTimes struct{ last atomic.Pointer[stampedTime] }

type stampedTime struct {
	ms   int64
	loc  *time.Location
	text string
}

const iso8601Millis = "2006-01-02T15:04:05.000Z0700"

func (m *millisecondTimes) encode(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
	enc.AppendString(m.text(t))
}

// text is t in iso8601Millis.
func (m *millisecondTimes) text(t time.Time) string {
	ms := t.UnixMilli()
	if p := m.last.Load(); p != nil && p.ms == ms && p.loc == t.Location() {
		return p.text
	}
	text := t.Format(iso8601Millis)
	m.last.Store(&stampedTime{ms, t.Location(), text})
	return text
}

// newServerLogger is the server's logger, and the gateway's access log
// writing the same lines to the same output: writes are buffered and
// flushed every 200 ms (and when 256 KiB pile up), because one write system
// call per access-log line was a tenth of a read request's cost. stop
// flushes.
func newServerLogger(level string, w io.Writer) (log *zap.Logger, access *accessLog, stop func(), err error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("[taskgate] log_level: %w", err)
	}
	ws := &zapcore.BufferedWriteSyncer{WS: zapcore.AddSync(w), Size: 256 << 10, FlushInterval: 200 * time.Millisecond}
	times := new(millisecondTimes)
	return newJSONLogger(lvl, ws, times), newAccessLog(ws, lvl, times), func() { _ = ws.Stop() }, nil
}

// offline opens what a provisioning command needs: config, the store, and
// the signing keys in it (the signer mints with their active key).
func (e *cliEnv) offline(ctx context.Context) (*config.Config, *tokens.Signer, *tokens.Manager, storage, error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	log, err := newLogger("warn", e.stderr)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	db, err := openStorage(ctx, cfg, time.Now)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	keys, err := openKeys(ctx, cfg, db, time.Now, log)
	if err != nil {
		db.Close()
		return nil, nil, nil, nil, err
	}
	signer, err := tokens.NewSigner(tokenConfig(cfg, keys.Ring(), time.Now))
	if err != nil {
		db.Close()
		return nil, nil, nil, nil, err
	}
	return cfg, signer, keys, db.storage, nil
}

// newID returns a time-ordered UUID (v7), as Airflow 3 uses for task
// instances; it falls back to a random one if the clock read fails.
func newID() string {
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return uuid.NewString()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
