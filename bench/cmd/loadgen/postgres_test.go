package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPgTIID(t *testing.T) {
	// The script's SQL expression and the Go ids must name the same rows.
	if got, want := pgTIID(0x2a), "00000000-0000-7000-8000-00000000002a"; got != want {
		t.Errorf("pgTIID(42) = %s, want %s", got, want)
	}
}

func TestReadPgbenchLogs(t *testing.T) {
	dir := t.TempDir()
	// client txno latency_us script epoch_s epoch_us, two threads' files.
	// The run starts at 100.000000 (the first end minus its latency); with a
	// 1 s warm-up, the transactions ending before 101 are dropped.
	files := map[string]string{
		"log.1":   "0 1 500 0 100 500\n0 2 2000 0 101 200000\n",
		"log.1.1": "1 1 1000 0 101 700000\n1 2 3000 0 102 200000\ngarbage\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	lat, first, last, err := readPgbenchLogs(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{2 * time.Millisecond, time.Millisecond, 3 * time.Millisecond}
	if diff := cmp.Diff(want, lat); diff != "" {
		t.Errorf("latencies (-want +got):\n%s", diff)
	}
	if got := last.Sub(first); got != time.Second {
		t.Errorf("span = %s, want 1s", got)
	}
	if _, _, _, err := readPgbenchLogs(t.TempDir(), 0); err == nil {
		t.Error("no log files: want an error")
	}
}
