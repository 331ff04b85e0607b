package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

// Fuzz targets for everything the gateway decodes from a request: the body
// decoders, the time and duration parsers and the path parameters. Each
// must never panic, never accept what the model refuses, and refuse with a
// 422 that can be written as FastAPI's list of errors. scripts/fuzz.sh runs
// every one of them (3 s each in `make test`); the seeds below and under
// testdata/fuzz run in every plain `go test`.

// fuzzBodySeeds are request bodies every body target starts from.
var fuzzBodySeeds = []string{
	`{"state":"running","hostname":"h","unixname":"u","pid":1,"start_date":"2026-11-27T10:00:00Z"}`,
	`{"state":"running","hostname":"h","unixname":"u","pid":1.0,"start_date":1782907200.5}`,
	`{"state":"running","hostname":"h","unixname":"u","pid":1e3,"start_date":"2026-11-27 10:00:00"}`,
	`{"state":"queued","hostname":1,"pid":"1","start_date":null,"extra":true}`,
	`{"hostname":"h","pid":4242}`,
	`{"hostname":"h","pid":-9223372036854775808}`,
	`{"hostname":"h","pid":9223372036854775808}`,
	`{"hostname":"h","pid":1,"pid":2}`,
	`{"state":"success","end_date":"2026-11-27T10:00:00Z","task_outlets":[],"outlet_events":[],"rendered_map_index":null}`,
	`{"state":"failed","end_date":"2026-11-27T10:00:00+02:00"}`,
	`{"state":"up_for_retry","end_date":"2026-11-27T10:00:00Z","retry_delay_seconds":1.5,"retry_reason":"x"}`,
	`{"state":"deferred","classpath":"a.B","trigger_kwargs":{"k":1},"trigger_timeout":"PT30S","next_method":"m","next_kwargs":"enc"}`,
	`{"state":"deferred","classpath":"a.B","next_method":"m","trigger_timeout":-1e9}`,
	`{"state":"awaiting_input","next_method":"m","timeout":"P1DT2H3M4.5S"}`,
	`{"state":"up_for_reschedule","reschedule_date":"2026-11-27T10:00:00Z","end_date":"2026-11-27T10:00:00Z"}`,
	`{"state":"queued"}`, `{"state":"bogus"}`, `{"state":null}`, `{}`,
	`{"tasks":["a",["b",1],["c",-1],["d","1"],[1,2],["e",1,2]]}`,
	`[]`, `null`, `""`, `1`, ``, ` `, `{`, `{"a":}`, "\xef\xbb\xbf{}", `{"a":"\ud800"}`,
	`{"a":"\ud83d\ude00","b":["\\ud800","\udc00"]}`, `"\ud800\u0041"`, `"\\\ud83d\ude00"`, `{"k\udfff":1}`,
	strings.Repeat("[", 64) + strings.Repeat("]", 64),
	strings.Repeat("[", 65) + strings.Repeat("]", 65),
	`{"a":"` + strings.Repeat("[", 100) + `"}`,
	`{"a":"\"[[[["}`,
}

// fuzzCheck422 requires err to be a 422 the error handler can write.
func fuzzCheck422(t *testing.T, err error) {
	t.Helper()
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("refused with %T %v, want a *ValidationError (422)", err, err)
	}
	if len(verr.Errors) == 0 {
		t.Fatalf("422 without errors")
	}
	for _, fe := range verr.Errors {
		if fe.Type == "" || fe.Msg == "" || len(fe.Loc) == 0 {
			t.Fatalf("422 entry %+v lacks type, msg or loc", fe)
		}
	}
	if _, err := json.Marshal(map[string]any{"detail": verr.Errors}); err != nil {
		t.Fatalf("422 body cannot be written: %v", err)
	}
}

// fuzzObjectFields decodes body as a JSON object independently of the gateway,
// or reports that it is not one (or nests too deeply to be accepted).
func fuzzObjectFields(body []byte) (map[string]json.RawMessage, bool) {
	trimmed := bytes.TrimSpace(body)
	if !json.Valid(trimmed) || fuzzJSONDepth(trimmed) > maxJSONDepth {
		return nil, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(trimmed, &m) != nil || m == nil {
		return nil, false
	}
	return m, true
}

// fuzzJSONDepth is the nesting depth of valid JSON, counted with a decoder.
func fuzzJSONDepth(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	depth, most := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return most
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '[' || d == '{' {
				depth++
				most = max(most, depth)
			} else {
				depth--
			}
		}
	}
}

func fuzzOnlyKeys(t *testing.T, m map[string]json.RawMessage, allowed ...string) {
	t.Helper()
	for k := range m {
		found := false
		for _, a := range allowed {
			found = found || k == a
		}
		if !found {
			t.Fatalf("accepted a body with the field %q the model forbids", k)
		}
	}
}

func fuzzJSONString(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		t.Fatalf("accepted %s as a string", raw)
	}
	return s
}

func FuzzDecodeRunRequest(f *testing.F) {
	for _, s := range fuzzBodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeRunRequest(body)
		if err != nil {
			fuzzCheck422(t, err)
			return
		}
		// Accepted: a TIEnterRunningPayload, exactly.
		m, ok := fuzzObjectFields(body)
		if !ok {
			t.Fatalf("accepted %q, which is not a JSON object within the depth limit", body)
		}
		fuzzOnlyKeys(t, m, "state", "hostname", "unixname", "pid", "start_date")
		if len(m) != 5 {
			t.Fatalf("accepted %q without every required field", body)
		}
		if fuzzJSONString(t, m["state"]) != "running" {
			t.Fatalf("accepted state %s, want running", m["state"])
		}
		if fuzzJSONString(t, m["hostname"]) != req.Hostname || fuzzJSONString(t, m["unixname"]) != req.Unixname {
			t.Fatalf("decoded %+v from %q", req, body)
		}
		var pid float64
		if json.Unmarshal(m["pid"], &pid) != nil || pid != math.Trunc(pid) {
			t.Fatalf("accepted pid %s", m["pid"])
		}
		if _, ok := parseDatetime(m["start_date"]); !ok {
			t.Fatalf("accepted start_date %s", m["start_date"])
		}
		if req.StartDate.Location() != time.UTC {
			t.Fatalf("start_date %v not in UTC", req.StartDate)
		}
		fuzzWantWritable(t, req.StartDate)
	})
}

func FuzzDecodeStateUpdate(f *testing.F) {
	for _, s := range fuzzBodySeeds {
		f.Add([]byte(s))
	}
	fields := map[string][]string{
		"success":           {"end_date", "task_outlets", "outlet_events", "rendered_map_index"},
		"failed":            {"end_date", "rendered_map_index"},
		"skipped":           {"end_date", "rendered_map_index"},
		"removed":           {"end_date", "rendered_map_index"},
		"upstream_failed":   {"end_date", "rendered_map_index"},
		"up_for_retry":      {"end_date", "rendered_map_index", "retry_delay_seconds", "retry_reason"},
		"deferred":          {"classpath", "trigger_kwargs", "trigger_timeout", "queue", "next_method", "next_kwargs", "rendered_map_index"},
		"awaiting_input":    {"next_method", "next_kwargs", "timeout", "rendered_map_index"},
		"up_for_reschedule": {"reschedule_date", "end_date"},
	}
	required := map[string][]string{
		"success": {"end_date"}, "failed": {"end_date"}, "skipped": {"end_date"}, "removed": {"end_date"},
		"upstream_failed": {"end_date"}, "up_for_retry": {"end_date"}, "deferred": {"classpath", "next_method"},
		"awaiting_input": {"next_method"}, "up_for_reschedule": {"reschedule_date", "end_date"},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		u, err := decodeStateUpdate(body)
		if err != nil {
			fuzzCheck422(t, err)
			return
		}
		m, ok := fuzzObjectFields(body)
		if !ok {
			t.Fatalf("accepted %q, which is not a JSON object within the depth limit", body)
		}
		state := fuzzJSONString(t, m["state"])
		if string(u.State) != state {
			t.Fatalf("decoded state %q from %q", u.State, state)
		}
		allowed, known := fields[state]
		if !known && !contains(intermediateStates, state) {
			t.Fatalf("accepted unknown state %q", state)
		}
		fuzzOnlyKeys(t, m, append([]string{"state"}, allowed...)...)
		for _, r := range required[state] {
			if _, ok := m[r]; !ok {
				t.Fatalf("accepted %s without %s", state, r)
			}
		}
		for _, ts := range []*time.Time{u.EndDate, u.RescheduleDate} {
			if ts != nil {
				if ts.Location() != time.UTC {
					t.Fatalf("%v not in UTC", ts)
				}
				fuzzWantWritable(t, *ts)
			}
		}
		if state == "deferred" && len(u.TriggerKwargs) == 0 {
			t.Fatalf("deferred without trigger_kwargs")
		}
		if u.TriggerTimeout != nil && (*u.TriggerTimeout > 1e9*time.Second || *u.TriggerTimeout < -1e9*time.Second) {
			t.Fatalf("accepted timeout %s beyond the bound", u.TriggerTimeout)
		}
		for _, raw := range []json.RawMessage{u.TaskOutlets, u.OutletEvents, u.TriggerKwargs, u.NextKwargs} {
			if len(raw) > 0 && !json.Valid(raw) {
				t.Fatalf("decoded invalid JSON %q", raw)
			}
		}
	})
}

// FuzzDecodeBodies feeds one body to the decoders that share the object
// reader: the heartbeat, skip-downstream's task list, decodeObject and
// parseJSON (the XCom value and rendered fields).
func FuzzDecodeBodies(f *testing.F) {
	for _, s := range fuzzBodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// parseJSON: exactly the non-empty valid JSON within the depth limit.
		raw, verr := parseJSON(body)
		trimmed := bytes.TrimSpace(body)
		want := len(trimmed) > 0 && json.Valid(trimmed) && fuzzJSONDepth(trimmed) <= maxJSONDepth &&
			!fuzzLoneSurrogate(trimmed)
		switch {
		case verr != nil && want:
			t.Fatalf("parseJSON refused valid JSON %q (depth %d)", body, fuzzJSONDepth(trimmed))
		case verr != nil:
			fuzzCheck422(t, verr)
		case !want:
			t.Fatalf("parseJSON accepted %q", body)
		case !bytes.Equal(raw, trimmed):
			t.Fatalf("parseJSON changed %q into %q", body, raw)
		}

		o, verr := decodeObject(body)
		if verr != nil {
			fuzzCheck422(t, verr)
		} else if _, ok := fuzzObjectFields(body); !ok || o.fields == nil {
			t.Fatalf("decodeObject accepted %q, which is not an object", body)
		}

		host, pid, err := decodeHeartbeat(body)
		if err != nil {
			fuzzCheck422(t, err)
		} else {
			m, ok := fuzzObjectFields(body)
			if !ok {
				t.Fatalf("heartbeat accepted %q", body)
			}
			fuzzOnlyKeys(t, m, "hostname", "pid")
			if len(m) != 2 || fuzzJSONString(t, m["hostname"]) != host {
				t.Fatalf("heartbeat decoded %q, %d from %q", host, pid, body)
			}
		}

		if t := bytes.TrimSpace(body); !json.Valid(t) || t[0] != '[' {
			return // skip-downstream only passes on a JSON array (rawField "[")
		}
		refs, verr := decodeTaskRefs(body)
		if verr != nil {
			fuzzCheck422(t, verr)
			return
		}
		var items []json.RawMessage
		if json.Unmarshal(body, &items) != nil || len(items) != len(refs) {
			t.Fatalf("decodeTaskRefs accepted %q as %d refs", body, len(refs))
		}
		for i, it := range items {
			var id string
			if it[0] == '"' && json.Unmarshal(it, &id) == nil {
				if refs[i].TaskID != id || refs[i].MapIndex != nil {
					t.Fatalf("ref %d of %q decoded as %+v", i, body, refs[i])
				}
				continue
			}
			var pair []json.RawMessage
			if json.Unmarshal(it, &pair) != nil || len(pair) != 2 || refs[i].MapIndex == nil {
				t.Fatalf("ref %d of %q (%s) accepted as %+v", i, body, it, refs[i])
			}
			if fuzzJSONString(t, pair[0]) != refs[i].TaskID {
				t.Fatalf("ref %d of %q decoded as %+v", i, body, refs[i])
			}
		}
	})
}

// fuzzEscape matches one escape of a JSON string; in valid JSON every
// backslash is inside a string.
var fuzzEscape = regexp.MustCompile(`\\(?:u([0-9a-fA-F]{4})|.)`)

// fuzzLoneSurrogate reports, independently of parseJSON's scanner, whether
// valid JSON b has a \u escape of a surrogate half not directly followed
// (high) or preceded (low) by its partner.
func fuzzLoneSurrogate(b []byte) bool {
	ms := fuzzEscape.FindAllSubmatchIndex(b, -1)
	unit := func(k int) rune {
		if ms[k][2] < 0 {
			return -1
		}
		n, _ := strconv.ParseUint(string(b[ms[k][2]:ms[k][3]]), 16, 32)
		return rune(n)
	}
	for k := 0; k < len(ms); k++ {
		r := unit(k)
		switch {
		case r < 0xd800 || r > 0xdfff:
		case r <= 0xdbff && k+1 < len(ms) && ms[k+1][0] == ms[k][1] && unit(k+1) >= 0xdc00 && unit(k+1) <= 0xdfff:
			k++ // a pair
		default:
			return true
		}
	}
	return false
}

// fuzzWantWritable requires an accepted timestamp to be one the store and the
// responses can encode (encoding/json writes years 0 to 9999 only).
func fuzzWantWritable(t *testing.T, ts time.Time) {
	t.Helper()
	if _, err := json.Marshal(ts); err != nil || ts.Year() < 1 {
		t.Fatalf("accepted %v, which cannot be written back (or held by Python): %v", ts, err)
	}
}

// FuzzParseTimes: parseDatetime and parseDuration on any JSON value.
func FuzzParseTimes(f *testing.F) {
	for _, s := range []string{
		`"2026-11-27T10:00:00Z"`, `"2026-11-27T10:00:00.123456789+05:30"`, `"2026-11-27 10:00:00"`,
		`"2026-11-27T10:00:00"`, `"2026-02-30T10:00:00Z"`, `"0000-01-01T00:00:00Z"`, `"9999-12-31T23:59:59Z"`,
		`1782907200`, `1782907200.999999999`, `-1e11`, `1e11`, `1e12`, `1e400`, `-0`, `null`, `true`, `""`,
		`"PT30S"`, `"P1W"`, `"P1DT2H3M4.5S"`, `"-PT1S"`, `"P"`, `"PT"`, `"P1DT"`, `"PT1e9S"`, `"P99999999W"`,
		`30`, `-30.5`, `1e9`, `1000000000.1`, `"30"`, `[1]`, `{"s":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if ts, ok := parseDatetime(raw); ok {
			if ts.Location() != time.UTC {
				t.Fatalf("parseDatetime(%q) = %v, not UTC", raw, ts)
			}
			var f float64
			if json.Unmarshal(raw, &f) == nil && math.Abs(f) > 1e11 {
				t.Fatalf("parseDatetime accepted %q, beyond ±1e11 s", raw)
			}
			fuzzWantWritable(t, ts)
		}
		if d, ok := parseDuration(raw); ok {
			if d > 1e9*time.Second || d < -1e9*time.Second {
				t.Fatalf("parseDuration(%q) = %s, beyond the bound", raw, d)
			}
			var s string
			if raw[0] == '"' && json.Unmarshal(raw, &s) == nil && (s == "P" || strings.HasSuffix(s, "T") || !strings.Contains(s, "P")) {
				t.Fatalf("parseDuration accepted %q", raw)
			}
		}
	})
}

// fuzzRouter routes like the gateway (the same path patterns) to handlers
// that only read the parameters, so the fuzzer reaches pathParam,
// parseXComPath, variableKey and taskInstanceID through a real Echo router
// and real request parsing.
func fuzzRouter(got *fuzzParams) *echo.Echo {
	e := echo.New()
	e.HTTPErrorHandler = func(error, echo.Context) {}
	e.GET("/execution/xcoms/:dag_id/:run_id/:task_id/*", func(c echo.Context) error {
		got.xcom, got.err = parseXComPath(c)
		got.hit = "xcom"
		return nil
	})
	e.GET("/execution/variables/*", func(c echo.Context) error {
		got.variable, got.err = variableKey(c)
		got.hit = "variable"
		return nil
	})
	e.GET("/execution/connections/:connection_id", func(c echo.Context) error {
		got.variable, got.err = pathParam(c, "connection_id")
		got.hit = "connection"
		return nil
	})
	e.GET("/execution/task-instances/:task_instance_id/heartbeat", func(c echo.Context) error {
		got.ti, got.err = taskInstanceID(c)
		got.hit = "ti"
		return nil
	})
	return e
}

type fuzzParams struct {
	hit      string
	xcom     xcomPath
	variable string
	ti       string
	err      error
}

// FuzzPathParams builds request targets from fuzzed segments, parses them as
// net/http's server does and routes them through Echo. Whatever arrives, a
// parameter is its segment of the request path decoded exactly once: of
// the raw path when Go keeps it (so %2F stays inside a segment), else of
// the decoded path, split as Starlette would. Refusals are 422s (or 404 for
// an empty variable key), an accepted XCom key is never empty and an
// accepted task instance id is a canonical UUID.
func FuzzPathParams(f *testing.F) {
	for _, s := range [][4]string{
		{"dag", "manual__2026-11-27T10:00:00+00:00", "task", "return_value"},
		{"d%2Fx", "r", "t", "a%2Fb/c"},
		{"%2e%2e", "..", ".", "../../etc/passwd"},
		{"d", "r", "t", "%00"},
		{"d", "r", "t", "%zz"},
		{"d", "r", "t", "k/item/0"},
		{"d", "r", "t", ""},
		{"", "", "", "k"},
		{"a%2Fb{", "r", "t", "k"},
		{"%252F", "%C3%A9", "%FF", "%2e%2e%2f%2e%2e%2fapi"},
		{"0190e3e4-3c2b-7a8e-9d0e-000000000001", "{0190E3E4-3C2B-7A8E-9D0E-000000000001}", "urn:uuid:0190e3e4-3c2b-7a8e-9d0e-000000000001", "0190e3e43c2b7a8e9d0e000000000001"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, dag, run, task, key string) {
		// The ids are single segments: a literal '/' there would just make
		// another route. '?' and '#' would end the path.
		seg := strings.NewReplacer("/", "_", "?", "_", "#", "_")
		dag, run, task = seg.Replace(dag), seg.Replace(run), seg.Replace(task)
		key = strings.NewReplacer("?", "_", "#", "_").Replace(key)
		var got fuzzParams
		e := fuzzRouter(&got)
		// serve routes target and returns the segments after prefix that
		// the parameters must equal (n of them, the last one the rest of
		// the path), and false when a segment holds a bad escape.
		serve := func(target, prefix string, n int) (want []string, decodable, served bool) {
			got = fuzzParams{}
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n")))
			if err != nil {
				return nil, false, false // net/http's server answers 400 itself
			}
			e.ServeHTTP(httptest.NewRecorder(), req)
			decodable = true
			if raw := req.URL.RawPath; raw != "" {
				want = strings.SplitN(strings.TrimPrefix(raw, prefix), "/", n)
				for i, w := range want {
					d, err := url.PathUnescape(w)
					decodable = decodable && err == nil
					want[i] = d
				}
			} else {
				want = strings.SplitN(strings.TrimPrefix(req.URL.Path, prefix), "/", n)
			}
			return want, decodable, true
		}
		refused := func(what string) {
			t.Helper()
			var verr *ValidationError
			if errors.As(got.err, &verr) {
				fuzzCheck422(t, verr)
				return
			}
			var herr *echo.HTTPError
			if !errors.As(got.err, &herr) || herr.Code != http.StatusNotFound {
				t.Fatalf("%s: refused with %T %v, want a 422 (or 404)", what, got.err, got.err)
			}
		}

		target := "/execution/xcoms/" + dag + "/" + run + "/" + task + "/" + key
		if want, ok, served := serve(target, "/execution/xcoms/", 4); served && got.hit == "xcom" {
			switch {
			case got.err != nil:
				refused(target)
			case !ok:
				t.Fatalf("%s: accepted a bad escape", target)
			case len(want) != 4 || got.xcom != (xcomPath{want[0], want[1], want[2], want[3]}):
				t.Fatalf("%s: parsed %+v, want %q", target, got.xcom, want)
			case got.xcom.key == "":
				t.Fatalf("%s: accepted an empty key", target)
			}
		}

		target = "/execution/variables/" + key
		if want, ok, served := serve(target, "/execution/variables/", 1); served && got.hit == "variable" {
			switch {
			case got.err != nil:
				refused(target)
			case !ok || got.variable != want[0] || got.variable == "":
				t.Fatalf("%s: variable key %q, want %q", target, got.variable, want)
			}
		}

		target = "/execution/connections/" + dag
		if want, ok, served := serve(target, "/execution/connections/", 1); served && got.hit == "connection" {
			switch {
			case got.err != nil:
				refused(target)
			case !ok || got.variable != want[0]:
				t.Fatalf("%s: connection id %q, want %q", target, got.variable, want)
			}
		}

		target = "/execution/task-instances/" + dag + "/heartbeat"
		if _, _, served := serve(target, "", 1); served && got.hit == "ti" {
			if got.err != nil {
				refused(target)
			} else if u, err := uuid.Parse(got.ti); err != nil || u.String() != got.ti {
				t.Fatalf("%s: accepted task instance id %q, not a canonical UUID", target, got.ti)
			}
		}
	})
}

// FuzzScanHeartbeat checks the heartbeat fast path against the full
// validation: whatever scanHeartbeat accepts, decodeObject accepts with the
// same hostname and pid.
func FuzzScanHeartbeat(f *testing.F) {
	for _, s := range []string{
		`{"hostname":"worker-1","pid":4242}`, `{ "pid" : -1 , "hostname" : "" }`,
		`{"hostname":"a","pid":1.0}`, `{"hostname":"a","pid":01}`, `{"hostname":"a\u0041","pid":1}`,
		`{"hostname":"a","hostname":"b"}`, `{"hostname":"a","pid":1,"x":2}`, `{"hostname":"a","pid":123456789012345678}`,
		`{"hostname":"a","pid":1234567890123456789}`, `{"hostname":"a","pid":1}x`, "{\"hostname\":\"h\xc3\xa9\",\"pid\":1}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		host, pid, ok := scanHeartbeat(body)
		if !ok {
			return
		}
		o, verr := decodeObject(body)
		if verr != nil {
			t.Fatalf("fast path accepted %q, full validation refused it: %v", body, verr)
		}
		h := o.str("hostname", true, false)
		p := o.integer("pid", true, false)
		o.forbidExtra()
		if err := o.err(); err != nil {
			t.Fatalf("fast path accepted %q, full validation refused it: %v", body, err)
		}
		if *h != host || *p != pid {
			t.Fatalf("%q: fast path %q %d, full validation %q %d", body, host, pid, *h, *p)
		}
	})
}

func TestScanHeartbeat(t *testing.T) {
	for body, want := range map[string]bool{
		`{"hostname":"worker-1.example","pid":4242}`:   true,
		"{\n  \"pid\": 7,\n  \"hostname\": \"w\"\n}\n": true,
		`{"hostname":"w","pid":-3}`:                    true,
		`{"hostname":"w","pid":4.0}`:                   false, // valid, but for the full validation
		`{"hostname":"w\n","pid":1}`:                   false,
		`{"hostname":"w","pid":1,"pid":2}`:             false,
		`{"hostname":"w"}`:                             false,
		`[]`:                                           false,
	} {
		if _, _, ok := scanHeartbeat([]byte(body)); ok != want {
			t.Errorf("scanHeartbeat(%q) ok = %v, want %v", body, ok, want)
		}
	}
}
