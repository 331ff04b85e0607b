package integration_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Airflow's test_metrics.py (execution_api/versions/head). Airflow replays
// the forwarded metrics into its stats backend, which its test mocks; the
// server has none, so each case checks the 204 and what taskgate does with
// the metrics instead: one debug log line per metric, with its kind, name,
// tags and value or values. Zero counters are logged too (Airflow skips the
// backend call for them): the log records what arrived.

func TestConformanceMetrics(t *testing.T) {
	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "metrics", "r1", "t")
	srv := startServer(t, dataDir, "AIRFLOW__TASKGATE__LOG_LEVEL=debug")
	exec := "Bearer " + startedToken(t, srv.URL, q)
	tests := []struct {
		name, metric string
		want         map[string]any
	}{
		{"test_metrics.py::TestForwardMetrics::test_metrics_are_replayed_into_the_backend[counter]",
			`{"kind": "counter", "name": "ti_successes", "tags": {"dag_id": "dag"}, "value": 2}`,
			map[string]any{"kind": "counter", "name": "ti_successes", "value": 2.0}},
		{"test_metrics.py::TestForwardMetrics::test_metrics_are_replayed_into_the_backend[negative_counter]",
			`{"kind": "counter", "name": "pool.running_slots", "value": -3}`,
			map[string]any{"kind": "counter", "name": "pool.running_slots", "value": -3.0}},
		{"test_metrics.py::TestForwardMetrics::test_metrics_are_replayed_into_the_backend[zero_counter]",
			`{"kind": "counter", "name": "ti_zero", "value": 0}`,
			map[string]any{"kind": "counter", "name": "ti_zero", "value": 0.0}},
		{"test_metrics.py::TestForwardMetrics::test_metrics_are_replayed_into_the_backend[gauge]",
			`{"kind": "gauge", "name": "pool.open_slots", "value": 4.5, "delta": true}`,
			map[string]any{"kind": "gauge", "name": "pool.open_slots", "value": 4.5, "delta": true}},
		{"test_metrics.py::TestForwardMetrics::test_metrics_are_replayed_into_the_backend[timing]",
			`{"kind": "timing", "name": "task.duration", "tags": {"task_id": "t"}, "values": [12.0, 30.0]}`,
			map[string]any{"kind": "timing", "name": "task.duration"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t, srv.URL, "POST", "/execution/metrics", exec, `{"metrics": [`+tt.metric+`]}`)
			if r.status != 204 {
				t.Fatalf("%s, want 204", r)
			}
			// The server's log is flushed every 200 ms.
			var entry map[string]any
			waitFor(t, 5*time.Second, "the forwarded metric's log line", func() (bool, string) {
				for _, line := range strings.Split(srv.logs.String(), "\n") {
					var e map[string]any
					if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == "forwarded metric" && e["name"] == tt.want["name"] {
						entry = e
						return true, ""
					}
				}
				return false, "no line yet"
			})
			for k, v := range tt.want {
				if entry[k] != v {
					t.Errorf("log %s = %v, want %v", k, entry[k], v)
				}
			}
			if entry["ti_id"] != q.TIID {
				t.Errorf("log ti_id = %v", entry["ti_id"])
			}
		})
	}
	// What Airflow's strict models refuse.
	for _, body := range []string{`{}`, `{"metrics": [{"kind": "histogram", "name": "x"}]}`,
		`{"metrics": [{"kind": "counter"}]}`, `{"metrics": [{"kind": "counter", "name": "x", "extra": 1}]}`,
		`{"metrics": [{"kind": "timing", "name": "x", "values": ["a"]}]}`, `{"metrics": [{"kind": "counter", "name": "x", "tags": {"a": 1}}]}`} {
		if r := send(t, srv.URL, "POST", "/execution/metrics", exec, body); r.status != 422 {
			t.Errorf("%s: %s, want 422", body, r)
		}
	}
	if r := send(t, srv.URL, "POST", "/execution/metrics", "Bearer "+q.Token, `{"metrics": []}`); r.status != 403 {
		t.Errorf("a workload token: %s, want 403", r)
	}
}
