package integration_test

import (
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sendAt makes one request naming the Execution API version v (nil: no
// Airflow-API-Version header) and checks that the response names the
// version as Airflow does: as sent, or the newest when none was sent.
func sendAt(t *testing.T, base string, v *string, method, path, authz, body string) *response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if v != nil {
		req.Header.Set("Airflow-API-Version", *v)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := &response{method: method, path: path, status: resp.StatusCode, header: resp.Header, body: b}
	want := "2026-11-13"
	if v != nil {
		want = *v
	}
	if got := r.header.Values("Airflow-API-Version"); len(got) != 1 || got[0] != want {
		t.Errorf("%s: Airflow-API-Version = %q, want %q", r, got, want)
	}
	if r.status >= 500 {
		t.Errorf("%s: server error", r)
	}
	return r
}

func ver(v string) *string { return &v }

func sortedKeys(t *testing.T, raw []byte, at string) []string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("body %s: %v", raw, err)
	}
	if at != "" {
		m, _ = m[at].(map[string]any)
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestAPIVersions runs the real binary and sends it requests of older
// Execution API versions: each is answered with the shapes of its version
// (Airflow's versions/__init__.py at 00414da8 and its version changes).
func TestAPIVersions(t *testing.T) {
	dir := newDataDir(t)
	// The CLI queues into the data directory only while no server runs.
	qs := map[string]queued{}
	for _, task := range []string{"old_run", "new_run", "xcoms", "variables"} {
		qs[task] = queueTask(t, dir, "versions", "r_"+task, task)
	}
	qs["retry"] = queueTask(t, dir, "versions", "r_retry", "retry", "--max-tries", "3")
	srv := startServer(t, dir)
	base := srv.URL
	h := host{"versions-host", "airflow", 4100}

	t.Run("run at 2025-04-28 has that version's TIRunContext", func(t *testing.T) {
		q := qs["old_run"]
		r := sendAt(t, base, ver("2025-04-28"), "PATCH", tiPath(q.TIID, "run"), "Bearer "+q.Token, h.runPayload(t))
		mustStatus(t, r, 200)
		if diff := cmp.Diff([]string{"connections", "dag_run", "max_tries", "should_retry", "task_reschedule_count",
			"upstream_map_indexes", "variables", "xcom_keys_to_clear"}, sortedKeys(t, r.body, "")); diff != "" {
			t.Errorf("TIRunContext (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"clear_number", "conf", "consumed_asset_events", "dag_id", "data_interval_end",
			"data_interval_start", "end_date", "logical_date", "run_after", "run_id", "run_type", "start_date"},
			sortedKeys(t, r.body, "dag_run")); diff != "" {
			t.Errorf("DagRun (-want +got):\n%s", diff)
		}
		tok := r.header.Get("Refreshed-API-Token")
		// rendered_map_index exists from 2025-04-28 on; 2025-04-11 refuses it.
		failed := `{"state":"failed","end_date":"2026-11-27T10:00:00Z","rendered_map_index":"x"}`
		wantJSON(t, sendAt(t, base, ver("2025-04-11"), "PATCH", tiPath(q.TIID, "state"), "Bearer "+tok, failed), 422,
			`{"detail":[{"type":"extra_forbidden","loc":["body","rendered_map_index"],"msg":"Extra inputs are not permitted","input":"x"}]}`)
		wantNoContent(t, sendAt(t, base, ver("2025-04-28"), "PATCH", tiPath(q.TIID, "state"), "Bearer "+tok, failed), 204)
	})

	t.Run("run without a version is the newest", func(t *testing.T) {
		q := qs["new_run"]
		r := sendAt(t, base, nil, "PATCH", tiPath(q.TIID, "run"), "Bearer "+q.Token, h.runPayload(t))
		mustStatus(t, r, 200)
		if diff := cmp.Diff([]string{"connections", "dag_run", "max_tries", "should_retry", "task_reschedule_count",
			"variables", "xcom_keys_to_clear"}, sortedKeys(t, r.body, "")); diff != "" {
			t.Errorf("TIRunContext (-want +got):\n%s", diff)
		}
		if keys := sortedKeys(t, r.body, "dag_run"); !contains(keys, "state") || !contains(keys, "note") {
			t.Errorf("DagRun fields %v", keys)
		}
	})

	t.Run("retry policy fields before 2026-06-30", func(t *testing.T) {
		q := qs["retry"]
		tok := startedToken(t, base, q)
		retry := `{"state":"up_for_retry","end_date":"2026-11-27T10:00:00Z","retry_delay_seconds":5}`
		wantJSON(t, sendAt(t, base, ver("2026-04-06"), "PATCH", tiPath(q.TIID, "state"), "Bearer "+tok, retry), 422,
			`{"detail":[{"type":"extra_forbidden","loc":["body","retry_delay_seconds"],"msg":"Extra inputs are not permitted","input":5}]}`)
		wantNoContent(t, sendAt(t, base, ver("2026-06-30"), "PATCH", tiPath(q.TIID, "state"), "Bearer "+tok, retry), 204)
	})

	t.Run("xcom slice before include_prior_dates", func(t *testing.T) {
		q := qs["xcoms"]
		tok := startedToken(t, base, q)
		mustStatus(t, sendAt(t, base, nil, "POST", q.xcomPath("k"), "Bearer "+tok, `"v"`), 201)
		slice := q.xcomPath("k") + "/slice?include_prior_dates=maybe"
		if r := sendAt(t, base, nil, "GET", slice, "Bearer "+tok, ""); r.status != 422 {
			t.Errorf("%s: want 422 at the newest version", r)
		}
		// 2025-05-20's slice had no include_prior_dates: the value is not read.
		wantJSON(t, sendAt(t, base, ver("2025-05-20"), "GET", slice, "Bearer "+tok, ""), 200, `["v"]`)
	})

	t.Run("variables/keys before 2026-06-30 is the variable keys", func(t *testing.T) {
		q := qs["variables"]
		tok := startedToken(t, base, q)
		wantJSON(t, sendAt(t, base, ver("2026-04-06"), "GET", "/execution/variables/keys", "Bearer "+tok, ""), 404,
			`{"detail":{"reason":"not_found","message":"Variable with key 'keys' not found"}}`)
		wantJSON(t, sendAt(t, base, ver("2026-06-30"), "GET", "/execution/variables/keys", "Bearer "+tok, ""), 200,
			`{"keys":[],"total_entries":0}`)
	})

	t.Run("unknown versions", func(t *testing.T) {
		wantJSON(t, sendAt(t, base, ver("2024-12-31"), "GET", "/execution/health", "", ""), 404, `{"detail":"Not Found"}`)
		wantJSON(t, sendAt(t, base, ver("2025-06-01"), "GET", "/execution/health", "", ""), 200, `{"status":"healthy"}`)
	})

	t.Run("openapi and docs need no token", func(t *testing.T) {
		r := sendAt(t, base, nil, "GET", "/execution/openapi.json?version=2025-04-11", "", "")
		mustStatus(t, r, 200)
		var doc map[string]any
		if err := json.Unmarshal(r.body, &doc); err != nil || doc["openapi"] != "3.1.0" {
			t.Errorf("openapi.json: %v %v", err, doc["openapi"])
		}
		if paths, _ := doc["paths"].(map[string]any); paths["/variables/keys"] != nil {
			t.Error("2025-04-11 lists /variables/keys")
		}
		if r := sendAt(t, base, nil, "GET", "/execution/docs", "", ""); r.status != 200 ||
			!strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Errorf("docs: %s", r)
		}
	})
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
