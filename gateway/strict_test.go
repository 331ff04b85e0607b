package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/workload"
)

// TestTaskVariableWrites: under [taskgate] task_variable_writes = none a
// task token still reads variables but neither sets nor deletes one, and the
// refusal comes after authentication, before the body is looked at; the
// default (all) writes as Airflow does. Operators write either way.
func TestTaskVariableWrites(t *testing.T) {
	const denied = `{"detail":{"reason":"access_denied","message":"Tasks may not write variables on this server ([taskgate] task_variable_writes = none)"}}`
	for _, tc := range []struct {
		name   string
		mode   VariableWrites
		method string
		body   string
		status int
		want   string // the body, when it is fixed
	}{
		{"default: a task sets a variable", "", "PUT", `{"val":"new"}`, 201, `{"message":"Variable successfully set"}`},
		{"all: a task sets a variable", VariableWritesAll, "PUT", `{"val":"new"}`, 201, `{"message":"Variable successfully set"}`},
		{"all: a task deletes a variable", VariableWritesAll, "DELETE", "", 204, ""},
		{"all: a task reads a variable", VariableWritesAll, "GET", "", 200, `{"key":"shared","value":"old"}`},
		{"none: a task may not set a variable", VariableWritesNone, "PUT", `{"val":"new"}`, 403, denied},
		{"none: refused before the body is validated", VariableWritesNone, "PUT", `{"bogus":1}`, 403, denied},
		{"none: a task may not delete a variable", VariableWritesNone, "DELETE", "", 403, denied},
		{"none: a task still reads a variable", VariableWritesNone, "GET", "", 200, `{"key":"shared","value":"old"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, withConfig(func(c *Config) { c.TaskVariableWrites = tc.mode }))
			old := "old"
			if err := h.db.PutVariable(context.Background(), workload.Variable{Key: "shared", Value: &old}); err != nil {
				t.Fatal(err)
			}
			tok := h.start(h.queue("vars", "run", "writer", -1))
			r := h.do(tc.method, "/execution/variables/shared", tok, tc.body)
			if tc.want != "" {
				wantJSON(t, r, tc.status, tc.want)
			} else if r.status != tc.status {
				t.Errorf("status = %d, want %d (body %s)", r.status, tc.status, r.body)
			}
			v, err := h.db.Variable(context.Background(), "shared")
			changed := errors.Is(err, workload.ErrNotFound) || (err == nil && *v.Value != old)
			if err != nil && !errors.Is(err, workload.ErrNotFound) {
				t.Fatal(err)
			}
			if wantChange := tc.status < 300 && tc.method != "GET"; changed != wantChange {
				t.Errorf("variable changed = %v, want %v", changed, wantChange)
			}
			// No token at all is still 401, whatever the mode.
			if r := h.do(tc.method, "/execution/variables/shared", "", tc.body); r.status != 401 {
				t.Errorf("without a token: %d %s, want 401", r.status, r.body)
			}
		})
	}
	t.Run("none: operators still write", func(t *testing.T) {
		h := newHarness(t, withConfig(func(c *Config) { c.TaskVariableWrites = VariableWritesNone }))
		h.addUser("op", auth.RoleOp)
		tok := h.login("op")
		wantJSON(t, h.do("POST", "/api/v2/variables", tok, `{"key":"k","value":"v"}`), 201,
			`{"key":"k","value":"v","description":null,"is_encrypted":false}`)
	})
	t.Run("unknown mode fails construction", func(t *testing.T) {
		var cfg Config
		newHarness(t, withConfig(func(c *Config) { cfg = *c }))
		cfg.TaskVariableWrites = "some"
		if _, err := New(cfg); err == nil {
			t.Fatal("New accepted task_variable_writes = some")
		}
	})
}

// TestParseJSONLoneSurrogates: a \u escape of a UTF-16 surrogate half
// without its partner names no character; Go would decode it as U+FFFD, so
// the store would keep something other than what was sent. parseJSON, which
// every body goes through, refuses it as pydantic refuses a str it cannot
// read as Unicode (string_unicode), locating the string; pairs and escaped
// backslashes are text.
func TestParseJSONLoneSurrogates(t *testing.T) {
	const msg = "Input should be a valid string, unable to parse raw data as a unicode string"
	for _, tc := range []struct {
		name string
		body string
		loc  string // the refusal's loc as JSON; "" when accepted
		in   string // the refusal's input as JSON
	}{
		{"lone high surrogate", `"\ud800"`, `["body"]`, `"\ud800"`},
		{"lone low surrogate", `"x\uDC00y"`, `["body"]`, `"x\uDC00y"`},
		{"high surrogate then a letter", `{"val":"\ud800\u0041"}`, `["body","val"]`, `"\ud800\u0041"`},
		{"two high surrogates", `{"val":"\ud83d\ud83d"}`, `["body","val"]`, `"\ud83d\ud83d"`},
		{"low before high", `{"val":"\ude00\ud83d"}`, `["body","val"]`, `"\ude00\ud83d"`},
		{"high surrogate at the end", `{"val":"ok\udbff"}`, `["body","val"]`, `"ok\udbff"`},
		{"nested in a list", `{"a":{"b":[1,"x",{"c":"\ud800"}]}}`, `["body","a","b",2,"c"]`, `"\ud800"`},
		{"after other members", `{"a":"\ud83d\ude00","b":[],"c":["\\ud800","\udfff"]}`, `["body","c",1]`, `"\udfff"`},
		{"in a key", `{"ok":1,"k\ud800":1}`, `["body","k\ud800"]`, `"k\ud800"`},
		{"the first of several", `["\ud800","\udc00"]`, `["body",0]`, `"\ud800"`},
		{"a pair", `{"val":"\ud83d\ude00"}`, "", ""},
		{"the last pair", `"\udbff\udfff"`, "", ""},
		{"an escaped backslash before u", `{"val":"\\ud800"}`, "", ""},
		{"an escaped backslash, then a pair", `"\\\ud83d\ude00"`, "", ""},
		{"other escapes", `{"val":"\u00e9\n\"\\\/\u0000"}`, "", ""},
		{"raw UTF-8", `{"val":"😀 café"}`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, verr := parseJSON([]byte(tc.body))
			if tc.loc == "" {
				if verr != nil {
					t.Fatalf("refused %s: %v", tc.body, verr.Errors)
				}
				if string(raw) != tc.body {
					t.Fatalf("parseJSON changed %s into %s", tc.body, raw)
				}
				return
			}
			if verr == nil {
				t.Fatalf("accepted %s", tc.body)
			}
			got, err := json.Marshal(verr.Errors)
			if err != nil {
				t.Fatal(err)
			}
			want := `[{"type":"string_unicode","loc":` + tc.loc + `,"msg":"` + msg + `","input":` + tc.in + `}]`
			if string(got) != want {
				t.Errorf("refusal\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestBodiesMustBeUTF8: every route that reads a body refuses one whose
// bytes are not UTF-8, as FastAPI does (it cannot decode such a body before
// parsing it: 400 "There was an error parsing the body"), instead of storing
// the text with U+FFFD in place of the bytes sent. A lone surrogate escape is
// a 422 through the handlers too. Nothing is written.
func TestBodiesMustBeUTF8(t *testing.T) {
	h := newHarness(t)
	h.addUser("op", auth.RoleOp)
	rest := h.login("op")
	id := h.queue("utf8_dag", "run", "t", -1)
	tok := h.start(id)
	old := "old"
	if err := h.db.PutVariable(context.Background(), workload.Variable{Key: "existing", Value: &old}); err != nil {
		t.Fatal(err)
	}
	const notText = `{"detail":"There was an error parsing the body"}`
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		want                            string
	}{
		{"variable value in Latin-1", "PUT", "/execution/variables/fresh", tok, "{\"val\":\"caf\xe9\"}", 400, notText},
		{"variable description with a stray continuation byte", "PUT", "/execution/variables/existing", tok, "{\"val\":\"new\",\"description\":\"\x80\"}", 400, notText},
		{"variable value with an overlong encoding", "PUT", "/execution/variables/fresh", tok, "{\"val\":\"\xc0\xaf\"}", 400, notText},
		{"variable value with a UTF-8 encoded surrogate", "PUT", "/execution/variables/fresh", tok, "{\"val\":\"\xed\xa0\x80\"}", 400, notText},
		{"variable value truncated mid-character", "PUT", "/execution/variables/fresh", tok, "{\"val\":\"\xe2\x82\"}", 400, notText},
		{"variable value with a lone surrogate escape", "PUT", "/execution/variables/fresh", tok, `{"val":"\ud800"}`, 422,
			`{"detail":[{"type":"string_unicode","loc":["body","val"],"msg":"Input should be a valid string, unable to parse raw data as a unicode string","input":"\ud800"}]}`},
		{"XCom value", "POST", "/execution/xcoms/utf8_dag/run/t/k", tok, "\"\xff\"", 400, notText},
		{"XCom value nested", "POST", "/execution/xcoms/utf8_dag/run/t/k", tok, "{\"a\":[\"\xfe\"]}", 400, notText},
		{"XCom value with a lone surrogate escape", "POST", "/execution/xcoms/utf8_dag/run/t/k", tok, `{"a":["\udc00"]}`, 422, ""},
		{"heartbeat hostname", "PUT", "/execution/task-instances/" + id + "/heartbeat", tok, "{\"hostname\":\"h\xff\",\"pid\":4242}", 400, notText},
		{"rendered fields", "PUT", "/execution/task-instances/" + id + "/rtif", tok, "{\"sql\":\"\xff\"}", 400, notText},
		{"admin variable create", "POST", "/api/v2/variables", rest, "{\"key\":\"fresh\",\"value\":\"\xff\"}", 400, notText},
		{"admin variable create, key", "POST", "/api/v2/variables", rest, "{\"key\":\"fr\xffsh\",\"value\":\"v\"}", 400, notText},
		{"admin variable patch", "PATCH", "/api/v2/variables/existing", rest, "{\"key\":\"existing\",\"value\":\"\xff\"}", 400, notText},
		{"admin variable patch, lone surrogate", "PATCH", "/api/v2/variables/existing", rest, `{"key":"existing","value":"\ud800"}`, 422, ""},
		{"login", "POST", "/auth/token", "", "{\"username\":\"op\xff\",\"password\":\"x\"}", 400, notText},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(tc.method, tc.path, tc.token, tc.body)
			if tc.want != "" {
				wantJSON(t, r, tc.status, tc.want)
			} else if r.status != tc.status {
				t.Errorf("status = %d, want %d (body %s)", r.status, tc.status, r.body)
			}
		})
	}
	// Nothing was stored.
	ctx := context.Background()
	if v, err := h.db.Variable(ctx, "fresh"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("variable fresh stored: %+v, %v", v, err)
	}
	if v, err := h.db.Variable(ctx, "existing"); err != nil || *v.Value != old || v.Description != nil {
		t.Errorf("variable existing changed: %+v, %v", v, err)
	}
	if r := h.do("GET", "/execution/xcoms/utf8_dag/run/t/k", tok, ""); r.status != 404 {
		t.Errorf("XCom stored: %d %s", r.status, r.body)
	}
	// Valid UTF-8 goes through unchanged.
	wantJSON(t, h.do("PUT", "/execution/variables/fresh", tok, `{"val":"café 😀 \ud83d\ude00"}`), 201, `{"message":"Variable successfully set"}`)
	if v, err := h.db.Variable(ctx, "fresh"); err != nil || *v.Value != "café 😀 😀" {
		t.Errorf("variable fresh = %+v, %v; want the text sent", v, err)
	}
}

// TestDuplicateHeadersRefused: a request carrying twice a header that
// decides something (which credential, how the body reads, which API
// version, which correlation id) is ambiguous — a proxy in front may read
// the other copy than the gateway — and is refused with 400 before
// authentication, whatever the copies hold. Cookie may be split over
// several headers (HTTP/2 does); the _token cookie must still be one.
func TestDuplicateHeadersRefused(t *testing.T) {
	h := newHarness(t)
	h.addUser("viewer", auth.RoleViewer)
	rest := h.login("viewer")
	tok := h.start(h.queue("dup_dag", "run", "t", -1))
	for _, tc := range []struct {
		name   string
		method string
		path   string
		hdr    [][2]string // added in order, repeats allowed
		status int
		want   string
	}{
		{"Authorization twice, the same token", "GET", "/execution/variables/x",
			[][2]string{{"Authorization", "Bearer " + tok}, {"Authorization", "Bearer " + tok}}, 400, `{"detail":"Duplicate header: Authorization"}`},
		{"Authorization twice, a bad token first", "GET", "/execution/variables/x",
			[][2]string{{"Authorization", "Bearer nonsense"}, {"Authorization", "Bearer " + tok}}, 400, `{"detail":"Duplicate header: Authorization"}`},
		{"Authorization twice on a public route", "GET", "/execution/health",
			[][2]string{{"Authorization", "Bearer a"}, {"Authorization", "Bearer b"}}, 400, `{"detail":"Duplicate header: Authorization"}`},
		{"Content-Type twice", "PUT", "/execution/variables/x",
			[][2]string{{"Authorization", "Bearer " + tok}, {"Content-Type", "application/json"}, {"Content-Type", "text/plain"}}, 400, `{"detail":"Duplicate header: Content-Type"}`},
		{"Airflow-API-Version twice", "GET", "/execution/variables/x",
			[][2]string{{"Authorization", "Bearer " + tok}, {"Airflow-API-Version", "2026-06-30"}, {"airflow-api-version", "2025-04-28"}}, 400, `{"detail":"Duplicate header: Airflow-API-Version"}`},
		{"Correlation-Id twice", "GET", "/execution/variables/x",
			[][2]string{{"Authorization", "Bearer " + tok}, {"Correlation-Id", "a"}, {"Correlation-Id", "b"}}, 400, `{"detail":"Duplicate header: Correlation-Id"}`},
		{"the _token cookie twice in one header", "GET", "/api/v2/variables",
			[][2]string{{"Cookie", "_token=" + rest + "; _token=" + rest}}, 400, `{"detail":"Duplicate cookie: _token"}`},
		{"the _token cookie in two headers", "GET", "/api/v2/variables",
			[][2]string{{"Cookie", "_token=" + rest}, {"Cookie", "theme=dark; _token=other"}}, 400, `{"detail":"Duplicate cookie: _token"}`},
		{"once each is fine", "GET", "/execution/variables/keys",
			[][2]string{{"Authorization", "Bearer " + tok}, {"Content-Type", "application/json"}, {"Airflow-API-Version", "2026-06-30"}, {"Correlation-Id", "a"}}, 200, `{"keys":[],"total_entries":0}`},
		{"cookies split over two headers are fine", "GET", "/api/v2/variables",
			[][2]string{{"Cookie", "_token=" + rest}, {"Cookie", "theme=dark"}}, 200, `{"variables":[],"total_entries":0}`},
		{"other headers may repeat", "GET", "/execution/variables/keys",
			[][2]string{{"Authorization", "Bearer " + tok}, {"Accept", "application/json"}, {"Accept", "*/*"}, {"X-Forwarded-For", "a"}, {"X-Forwarded-For", "b"}}, 200, `{"keys":[],"total_entries":0}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(`{"val":"v"}`))
			for _, kv := range tc.hdr {
				req.Header.Add(kv[0], kv[1])
			}
			rec := httptest.NewRecorder()
			h.srv.ServeHTTP(rec, req)
			wantJSON(t, response{rec.Code, rec.Header(), rec.Body.String()}, tc.status, tc.want)
		})
	}
	if v, err := h.db.Variable(context.Background(), "x"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("a refused request wrote: %+v, %v", v, err)
	}
}
