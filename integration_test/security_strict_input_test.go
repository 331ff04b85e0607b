package integration_test

import (
	"strings"
	"testing"
	"time"
)

// TestBodiesMustBeUTF8 sends bodies whose bytes are not UTF-8, and JSON
// strings with a lone surrogate escape, to the binary: variable values
// (Execution API and admin API), XCom values. Each is refused — 400 with
// FastAPI's words for bytes that are not text, 422 string_unicode for the
// escape — and nothing is stored, where before the text was stored with
// U+FFFD in place of what was sent. Valid text round-trips exactly.
func TestBodiesMustBeUTF8(t *testing.T) {
	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "utf8_dag", "manual__1", "pusher")
	op := newOperator(t, dataDir)
	op.addUser("ada", "op", "a-long-password-for-ada")
	mustCLI(t, dataDir, "variables", "set", "existing", "old")
	srv := startServer(t, dataDir)
	me := host{"utf8-worker.example.internal", "airflow", 6161}
	w := newWorker(t, srv.URL, q.Token)
	mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)
	_, rest := restLogin(t, srv.URL, "/auth/token", "ada", "a-long-password-for-ada")

	const notText = `{"detail":"There was an error parsing the body"}`
	const unicodeMsg = "Input should be a valid string, unable to parse raw data as a unicode string"
	for _, tc := range []struct {
		name, method, path, authz, body string
		status                          int
		want                            string
	}{
		{"variable value in Latin-1", "PUT", variablePath("fresh"), "", "{\"val\":\"caf\xe9\"}", 400, notText},
		{"variable value truncated mid-character", "PUT", variablePath("existing"), "", "{\"val\":\"\xf0\x9f\x98\"}", 400, notText},
		{"variable value with a lone surrogate escape", "PUT", variablePath("fresh"), "", `{"val":"a\ud800b"}`, 422,
			`{"detail":[{"type":"string_unicode","loc":["body","val"],"msg":"` + unicodeMsg + `","input":"a\ud800b"}]}`},
		{"XCom value", "POST", q.xcomPath("k"), "", "{\"rows\":[\"\xff\"]}", 400, notText},
		{"XCom value with a lone surrogate escape", "POST", q.xcomPath("k"), "", `{"rows":["ok","\udc00"]}`, 422,
			`{"detail":[{"type":"string_unicode","loc":["body","rows",1],"msg":"` + unicodeMsg + `","input":"\udc00"}]}`},
		{"admin variable create", "POST", "/api/v2/variables", "Bearer " + rest, "{\"key\":\"fresh\",\"value\":\"\xc3\"}", 400, notText},
		{"admin variable patch", "PATCH", "/api/v2/variables/existing", "Bearer " + rest, "{\"key\":\"existing\",\"value\":\"\x80\"}", 400, notText},
		{"admin variable patch, lone surrogate", "PATCH", "/api/v2/variables/existing", "Bearer " + rest, `{"key":"existing","value":"\udbff"}`, 422,
			`{"detail":[{"type":"string_unicode","loc":["body","value"],"msg":"` + unicodeMsg + `","input":"\udbff"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r *response
			if tc.authz == "" {
				r = w.do(tc.method, tc.path, tc.body)
			} else {
				r = send(t, srv.URL, tc.method, tc.path, tc.authz, tc.body)
			}
			wantJSON(t, r, tc.status, tc.want)
		})
	}
	// Nothing was stored, nothing changed.
	wantJSON(t, w.do("GET", variablePath("fresh"), ""), 404,
		`{"detail":{"reason":"not_found","message":"Variable with key 'fresh' not found"}}`)
	wantJSON(t, w.do("GET", variablePath("existing"), ""), 200, `{"key":"existing","value":"old"}`)
	if r := w.do("GET", q.xcomPath("k"), ""); r.status != 404 {
		t.Errorf("%s: the refused XCom was stored", r)
	}
	// Text, escaped or not, goes through exactly.
	wantJSON(t, w.do("PUT", variablePath("fresh"), `{"val":"café 😀 \ud83d\ude00 \\ud800"}`), 201, `{"message":"Variable successfully set"}`)
	r := w.do("GET", variablePath("fresh"), "")
	wantJSON(t, r, 200, `{"key":"fresh","value":"café 😀 😀 \\ud800"}`)
	srv.stop()
}

// TestDuplicateHeadersRefused speaks raw HTTP/1.1 to the binary: a request
// with Authorization, Content-Type, Airflow-API-Version or Correlation-Id
// twice, or the _token cookie twice, is refused with 400 before
// authentication and writes nothing; Cookie split over two header lines and
// identical Content-Lengths (net/http merges them) are served.
func TestDuplicateHeadersRefused(t *testing.T) {
	dataDir := newDataDir(t)
	op := newOperator(t, dataDir)
	op.addUser("ada", "viewer", "a-long-password-for-ada")
	q := queueTask(t, dataDir, "dup_dag", "manual__dup", "t")
	srv := startServer(t, dataDir, noAuthLimit)
	tok := startedToken(t, srv.URL, q)
	collected.addToken("execution token", tok)
	_, rest := restLogin(t, srv.URL, "/auth/token", "ada", "a-long-password-for-ada")
	authz := "Authorization: Bearer " + tok + "\r\n"
	put := func(key, hdr string) string {
		return "PUT " + variablePath(key) + " HTTP/1.1\r\nHost: x\r\n" + hdr + "Content-Length: 11\r\n\r\n{\"val\":\"x\"}"
	}
	get := func(path, hdr string) string { return "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + hdr + "\r\n" }
	for _, tc := range []struct {
		name, req string
		status    int
		want      string
	}{
		{"Authorization twice", put("dup1", authz+authz), 400, `{"detail":"Duplicate header: Authorization"}`},
		{"Authorization twice, the first not a token", put("dup2", "Authorization: Bearer x\r\n"+authz), 400, `{"detail":"Duplicate header: Authorization"}`},
		{"Content-Type twice", put("dup3", authz+"Content-Type: application/json\r\nContent-Type: text/plain\r\n"), 400, `{"detail":"Duplicate header: Content-Type"}`},
		{"Airflow-API-Version twice", put("dup4", authz+"Airflow-API-Version: 2026-06-30\r\nairflow-api-version: 2025-04-28\r\n"), 400, `{"detail":"Duplicate header: Airflow-API-Version"}`},
		{"Correlation-Id twice", put("dup5", authz+"Correlation-Id: a\r\nCorrelation-Id: b\r\n"), 400, `{"detail":"Duplicate header: Correlation-Id"}`},
		{"the _token cookie twice", get("/api/v2/variables", "Cookie: _token="+rest+"\r\nCookie: _token=another\r\n"), 400, `{"detail":"Duplicate cookie: _token"}`},
		{"Cookie over two lines", get("/api/v2/variables", "Cookie: _token="+rest+"\r\nCookie: theme=dark\r\n"), 200, ""},
		{"Content-Length twice, the same", put("dup6", authz+"Content-Length: 11\r\n"), 201, `{"message":"Variable successfully set"}`},
		{"each once", put("dup7", authz+"Content-Type: application/json\r\nAirflow-API-Version: 2026-06-30\r\nCorrelation-Id: a\r\n"), 201, `{"message":"Variable successfully set"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := rawExchange(srv.rawAddr(), []byte(tc.req), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if res.status != tc.status {
				t.Errorf("%s: %s, want %d", tc.name, res, tc.status)
			}
			if tc.want != "" {
				wantJSON(t, &response{method: "raw", path: tc.name, status: res.status, body: res.body}, tc.status, tc.want)
			}
		})
	}
	w := newWorker(t, srv.URL, tok)
	for _, key := range []string{"dup1", "dup2", "dup3", "dup4", "dup5"} {
		if r := w.do("GET", variablePath(key), ""); r.status != 404 {
			t.Errorf("%s: a refused request was served", r)
		}
	}
	srv.stop()
}

// TestRequestHeaderCap: the request line and headers are capped near what
// Airflow's server accepts (uvicorn with h11 buffers at most 16 KiB of an
// incomplete request head): a 20 KiB header is refused with 431 by the HTTP
// server itself, while an 8 KiB Authorization header or a 15 KiB header
// next to a valid token still gets its normal answer.
func TestRequestHeaderCap(t *testing.T) {
	dataDir := newDataDir(t)
	mustCLI(t, dataDir, "variables", "set", "capped", "v")
	q := queueTask(t, dataDir, "cap_dag", "manual__cap", "t")
	srv := startServer(t, dataDir, noAuthLimit)
	tok := startedToken(t, srv.URL, q)
	collected.addToken("execution token", tok)
	filler := strings.Repeat("a", 20<<10)
	for _, tc := range []struct {
		name   string
		hdr    string
		status int
	}{
		{"20 KiB custom header", "Authorization: Bearer " + tok + "\r\nX-Big: " + filler + "\r\n", 431},
		{"20 KiB Authorization", "Authorization: Bearer " + filler + "\r\n", 431},
		{"20 KiB over many headers", strings.Repeat("X-Many: "+filler[:1000]+"\r\n", 20) + "Authorization: Bearer " + tok + "\r\n", 431},
		{"8 KiB Authorization", "Authorization: Bearer " + filler[:8<<10] + "\r\n", 403},
		{"15 KiB Correlation-Id", "Authorization: Bearer " + tok + "\r\nCorrelation-Id: " + filler[:15<<10] + "\r\n", 200},
		{"a usual request", "Authorization: Bearer " + tok + "\r\n", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := "GET " + variablePath("capped") + " HTTP/1.1\r\nHost: x\r\n" + tc.hdr + "\r\n"
			res, err := rawExchange(srv.rawAddr(), []byte(req), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if res.status != tc.status {
				t.Errorf("%s: %s, want %d", tc.name, res, tc.status)
			}
			switch tc.status {
			case 403:
				wantJSON(t, &response{method: "GET", path: tc.name, status: res.status, body: res.body}, 403, `{"detail":"Invalid auth token"}`)
			case 200:
				wantJSON(t, &response{method: "GET", path: tc.name, status: res.status, body: res.body}, 200, `{"key":"capped","value":"v"}`)
			}
		})
	}
	srv.mustBeAlive(t)
	srv.stop()
}
