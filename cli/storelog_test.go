package cli

import (
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestZapHandler: what pgstore logs through slog reaches the server's zap
// logger with its level, constant message and snake_case fields; levels
// below the logger's are dropped.
func TestZapHandler(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	log := slog.New(&zapHandler{log: zap.New(core)})
	log.Debug("dropped")
	log.With("asset_id", 7).Error("partition mapper not implemented by taskgate", "mapper_class", "x.Y",
		"listening_dags", []string{"a", "b"})
	log.WithGroup("g").Warn("w", "k", 1)
	got := logs.AllUntimed()
	if len(got) != 2 {
		t.Fatalf("entries: %v", got)
	}
	if got[0].Level != zapcore.ErrorLevel || got[0].Message != "partition mapper not implemented by taskgate" {
		t.Errorf("entry %v", got[0])
	}
	want := map[string]any{"asset_id": int64(7), "mapper_class": "x.Y", "listening_dags": []any{"a", "b"}}
	if diff := cmp.Diff(want, got[0].ContextMap()); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if got[1].Level != zapcore.WarnLevel || !cmp.Equal(got[1].ContextMap(), map[string]any{"g.k": int64(1)}) {
		t.Errorf("entry %v %v", got[1], got[1].ContextMap())
	}
}
