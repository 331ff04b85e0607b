package integration_test

import (
	"encoding/json"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Airflow's XCom tests
// (airflow-core/tests/unit/api_fastapi/execution_api/versions/head/test_xcoms.py),
// against the binary. The XCom rows Airflow's fixtures write into the
// database are pushed here by the task instances that own them, with their
// own execution tokens, as taskgate only lets a task write its own XComs.

func TestConformanceXComs(t *testing.T) {
	dataDir := newDataDir(t)
	// A task mapped over ["f", None, "o", "b"]: map indexes 0..3, an XCom
	// at every index but 1 (None is never pushed).
	mapped := make([]queued, 4)
	for i := range mapped {
		mapped[i] = queueTask(t, dataDir, "dag", "runid", "task", "--map-index", strconv.Itoa(i))
	}
	earlier := queueTask(t, dataDir, "dag", "earlier_run", "task")
	later := queueTask(t, dataDir, "dag", "later_run", "task")
	ti := queueTask(t, dataDir, "dag", "test", "op1")
	ti1 := queueTask(t, dataDir, "my_dag_1", "test", "task_1")
	srv := startServer(t, dataDir)

	push := func(t *testing.T, w *worker, q queued, key, query, body string) *response {
		t.Helper()
		path := q.xcomPath(key)
		if query != "" {
			path += "?" + query
		}
		return w.do("POST", path, body)
	}
	for i, v := range []string{`"f"`, "", `"o"`, `"b"`} {
		if v == "" {
			continue
		}
		w := newWorker(t, srv.URL, startedToken(t, srv.URL, mapped[i]))
		mustStatus(t, push(t, w, mapped[i], "xcom_1", "map_index="+strconv.Itoa(i), v), 201)
	}
	for _, q := range []struct {
		q     queued
		value string
	}{{earlier, `"earlier_value"`}, {later, `"later_value"`}} {
		w := newWorker(t, srv.URL, startedToken(t, srv.URL, q.q))
		mustStatus(t, push(t, w, q.q, "test_key", "", q.value), 201)
	}
	w := newWorker(t, srv.URL, startedToken(t, srv.URL, ti))
	w1 := newWorker(t, srv.URL, startedToken(t, srv.URL, ti1))
	reader := w

	t.Run("test_xcoms.py::TestXComsGetEndpoint::test_xcom_get_from_db", func(t *testing.T) {
		for _, v := range []string{`"value1"`, `{"key2": "value2"}`, `{"key2": "value2", "key3": ["value3"]}`, `["value1"]`} {
			mustStatus(t, push(t, w, ti, "xcom_1", "", v), 201)
			wantJSON(t, reader.do("GET", ti.xcomPath("xcom_1"), ""), 200, `{"key":"xcom_1","value":`+v+`}`)
		}
	})

	t.Run("test_xcoms.py::TestXComsGetEndpoint::test_xcom_not_found", func(t *testing.T) {
		wantJSON(t, reader.do("GET", "/execution/xcoms/dag/runid/task/xcom_non_existent", ""), 404,
			`{"detail":{"message":"XCom with key='xcom_non_existent' map_index=-1 not found for task 'task' in DAG run 'runid' of 'dag'","reason":"not_found"}}`)
	})

	t.Run("test_xcoms.py::TestXComsGetEndpoint::test_xcom_get_with_offset", func(t *testing.T) {
		notFound := func(off int) string {
			return `{"detail":{"reason":"not_found","message":"XCom with key='xcom_1' offset=` + strconv.Itoa(off) +
				` not found for task 'task' in DAG run 'runid' of 'dag'"}}`
		}
		for _, tt := range []struct {
			offset, status int
			want           string
		}{
			{-4, 404, notFound(-4)}, {-3, 200, `"f"`}, {-2, 200, `"o"`}, {-1, 200, `"b"`},
			{0, 200, `"f"`}, {1, 200, `"o"`}, {2, 200, `"b"`}, {3, 404, notFound(3)},
		} {
			t.Run("test_xcoms.py::TestXComsGetEndpoint::test_xcom_get_with_offset["+strconv.Itoa(tt.offset)+"]", func(t *testing.T) {
				wantJSON(t, reader.do("GET", "/execution/xcoms/dag/runid/task/xcom_1/item/"+strconv.Itoa(tt.offset), ""), tt.status, tt.want)
			})
		}
	})

	// versions/v2025_04_28/test_xcom.py: the same fixture read through
	// GET …/{key}?offset=, the form clients of 2025-04-28 send, answered
	// with the whole XComResponse.
	t.Run("test_xcom.py::TestXComsGetEndpoint::test_xcom_get_with_offset", func(t *testing.T) {
		notFound := func(off int) string {
			return `{"detail":{"reason":"not_found","message":"XCom with key='xcom_1' offset=` + strconv.Itoa(off) +
				` not found for task 'task' in DAG run 'runid' of 'dag'"}}`
		}
		found := func(v string) string { return `{"key":"xcom_1","value":"` + v + `"}` }
		for _, tt := range []struct {
			offset, status int
			want           string
		}{
			{-4, 404, notFound(-4)}, {-3, 200, found("f")}, {-2, 200, found("o")}, {-1, 200, found("b")},
			{0, 200, found("f")}, {1, 200, found("o")}, {2, 200, found("b")}, {3, 404, notFound(3)},
		} {
			t.Run("test_xcom.py::TestXComsGetEndpoint::test_xcom_get_with_offset["+strconv.Itoa(tt.offset)+"]", func(t *testing.T) {
				req, err := newRequest("GET", srv.URL+"/execution/xcoms/dag/runid/task/xcom_1?offset="+strconv.Itoa(tt.offset),
					"Bearer "+reader.token, "v2025-04-28-offset", nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Airflow-API-Version", "2025-04-28")
				resp, err := httpClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				wantJSON(t, &response{method: "GET", path: req.URL.RequestURI(), status: resp.StatusCode, header: resp.Header, body: body},
					tt.status, tt.want)
			})
		}
	})

	t.Run("test_xcoms.py::TestXComsGetEndpoint::test_xcom_get_with_slice", func(t *testing.T) {
		values := []string{"f", "o", "b"}
		for _, id := range []string{":", "::-2", ":2", ":2:-1", ":-2", ":-2:-1", "1:", "2::-1", "1:2", "2:1:-1",
			"1:-1", "2:-2:-1", "-2:", "-1::-1", "-2:-1", "-1:-3:-1"} {
			t.Run("test_xcoms.py::TestXComsGetEndpoint::test_xcom_get_with_slice["+id+"]", func(t *testing.T) {
				start, stop, step := parseSlice(t, id)
				qs := url.Values{}
				for name, p := range map[string]*int{"start": start, "stop": stop, "step": step} {
					if p != nil {
						qs.Set(name, strconv.Itoa(*p))
					}
				}
				want := []string{}
				for _, i := range pythonSlice(len(values), start, stop, step) {
					want = append(want, values[i])
				}
				wantJSON(t, reader.do("GET", "/execution/xcoms/dag/runid/task/xcom_1/slice?"+qs.Encode(), ""), 200, mustJSON(t, want))
			})
		}
	})

	t.Run("test_xcoms.py::TestXComsGetEndpoint::test_xcom_get_slice_accepts_include_prior_dates", func(t *testing.T) {
		for _, tt := range []struct {
			prior string
			want  []string
		}{{"True", []string{"earlier_value", "later_value"}}, {"False", []string{"later_value"}}} {
			t.Run("test_xcoms.py::TestXComsGetEndpoint::test_xcom_get_slice_accepts_include_prior_dates["+tt.prior+"]", func(t *testing.T) {
				r := reader.do("GET", "/execution/xcoms/dag/later_run/task/test_key/slice?include_prior_dates="+tt.prior, "")
				mustStatus(t, r, 200)
				var got []string
				if err := json.Unmarshal(r.body, &got); err != nil {
					t.Fatalf("%s: %v", r, err)
				}
				sort.Strings(got)
				if mustJSON(t, got) != mustJSON(t, tt.want) {
					t.Errorf("%s: want the set %v", r, tt.want)
				}
			})
		}
	})

	t.Run("test_xcoms.py::TestXComsSetEndpoint::test_xcom_set", func(t *testing.T) {
		// The body is the JSON value itself: a string holding JSON is
		// stored as that string, null as None.
		for _, v := range []string{`"\"value1\""`, `"{\"key2\": \"value2\"}"`, `"{\"key2\": \"value2\", \"key3\": [\"value3\"]}"`,
			`"[\"value1\"]"`, `null`} {
			wantJSON(t, push(t, w, ti, "xcom_1", "", v), 201, `{"message":"XCom successfully set"}`)
			wantJSON(t, reader.do("GET", ti.xcomPath("xcom_1"), ""), 200, `{"key":"xcom_1","value":`+v+`}`)
		}
	})

	t.Run("test_xcoms.py::TestXComsSetEndpoint::test_xcom_round_trip", func(t *testing.T) {
		for _, tt := range []struct{ id, value string }{
			{"int", "1"}, {"float", "1.0"}, {"str", `"string"`}, {"bool", "true"}, {"dict", `{"key": "value"}`},
			{"list", "[1, 2]"}, {"tuple", `{"__classname__": "builtins.tuple", "__data__": [1, 2], "__version__": 1}`},
		} {
			t.Run("test_xcoms.py::TestXComsSetEndpoint::test_xcom_round_trip["+tt.id+"]", func(t *testing.T) {
				mustStatus(t, push(t, w, ti, "xcom_1", "", tt.value), 201)
				wantJSON(t, reader.do("GET", ti.xcomPath("xcom_1"), ""), 200, `{"key":"xcom_1","value":`+tt.value+`}`)
			})
		}
	})

	t.Run("test_xcoms.py::TestXComsSetEndpoint::test_xcom_set_mapped", func(t *testing.T) {
		wantJSON(t, push(t, w, ti, "xcom_1", "map_index=-1&mapped_length=3", `"value1"`), 201, `{"message":"XCom successfully set"}`)
		wantJSON(t, reader.do("GET", ti.xcomPath("xcom_1"), ""), 200, `{"key":"xcom_1","value":"value1"}`)
	})

	t.Run("test_xcoms.py::TestXComsSetEndpoint::test_xcom_set_downstream_of_mapped", func(t *testing.T) {
		t.Run("test_xcoms.py::TestXComsSetEndpoint::test_xcom_set_downstream_of_mapped[20-success]", func(t *testing.T) {
			mustStatus(t, push(t, w, ti, "xcom_1", "mapped_length=20", `"\"valid json\""`), 201)
		})
		t.Run("test_xcoms.py::TestXComsSetEndpoint::test_xcom_set_downstream_of_mapped[2000-too-long]", func(t *testing.T) {
			if r := push(t, w, ti, "xcom_1", "mapped_length=2000", `"\"valid json\""`); r.status < 400 {
				t.Errorf("%s: want an error status", r)
			}
		})
	})

	t.Run("test_xcoms.py::TestXComsSetEndpoint::test_xcom_roundtrip", func(t *testing.T) {
		for _, v := range []string{`"\"value1\""`, `"{\"key2\": \"value2\"}"`, `"{\"key2\": \"value2\", \"key3\": [\"value3\"]}"`, `"[\"value1\"]"`} {
			push(t, w, ti, "test_xcom_roundtrip", "", v)
			wantJSON(t, reader.do("GET", ti.xcomPath("test_xcom_roundtrip"), ""), 200, `{"key":"test_xcom_roundtrip","value":`+v+`}`)
		}
	})

	t.Run("test_xcoms.py::TestXComsDeleteEndpoint::test_xcom_delete_endpoint", func(t *testing.T) {
		mustStatus(t, push(t, w, ti, "xcom_1", "", `"\"value1\""`), 201)
		mustStatus(t, push(t, w1, ti1, "xcom_1", "", `"\"value2\""`), 201)
		wantJSON(t, w.do("DELETE", ti.xcomPath("xcom_1"), ""), 200, `{"message":"XCom with key: xcom_1 successfully deleted."}`)
		if r := reader.do("GET", ti.xcomPath("xcom_1"), ""); r.status != 404 {
			t.Errorf("%s: want 404 after the delete", r)
		}
		wantJSON(t, reader.do("GET", ti1.xcomPath("xcom_1"), ""), 200, `{"key":"xcom_1","value":"\"value2\""}`)
	})
}

// parseSlice reads a pytest slice id ("1:-1", "::-2") into its parts.
func parseSlice(t *testing.T, id string) (start, stop, step *int) {
	t.Helper()
	parts := make([]*int, 3)
	for i, s := range strings.SplitN(id, ":", 3) {
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("slice %q: %v", id, err)
		}
		parts[i] = &n
	}
	return parts[0], parts[1], parts[2]
}

// pythonSlice returns the indexes list[start:stop:step] selects from a list
// of n elements, as Python's slice.indices does.
func pythonSlice(n int, start, stop, step *int) []int {
	st := 1
	if step != nil {
		st = *step
	}
	clamp := func(p *int, def int) int {
		if p == nil {
			return def
		}
		v := *p
		if v < 0 {
			v += n
			if v < 0 {
				if st < 0 {
					return -1
				}
				return 0
			}
		}
		if v >= n {
			if st < 0 {
				return n - 1
			}
			return n
		}
		return v
	}
	var out []int
	if st > 0 {
		for i := clamp(start, 0); i < clamp(stop, n); i += st {
			out = append(out, i)
		}
	} else {
		for i := clamp(start, n-1); i > clamp(stop, -1); i += st {
			out = append(out, i)
		}
	}
	return out
}
