package gateway

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/taskgate/taskgate/auth"
)

// lockedBuffer collects log output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// take returns the lines written since the last call.
func (l *lockedBuffer) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimSuffix(l.b.String(), "\n")
	l.b.Reset()
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestAccessLogLine pins the access-log line byte for byte, as the server's
// JSON encoder writes it (timestamp and latency masked): one line per
// request, its fields in this order, never a token.
func TestAccessLogLine(t *testing.T) {
	out := &lockedBuffer{}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(out), zapcore.InfoLevel))
	h := newHarness(t, withConfig(func(cfg *Config) { cfg.Logger = logger }))
	id := h.queue("etl", "r", "t", -1)
	exec := h.start(id)
	h.addUser("ada", auth.RoleAdmin)
	rest := h.login("ada")
	r := h.do("POST", "/api/v2/components", rest, `{"kind":"triggerer","name":"trig-1"}`)
	if r.status != 201 {
		t.Fatalf("register = %d %s", r.status, r.body)
	}
	comp := r.json(t).(map[string]any)["token"].(string)
	execClaims, _ := h.tokens.Validate(t.Context(), exec)
	compClaims, _ := h.tokens.Validate(t.Context(), comp)
	restClaims, _ := h.rest.Validate(t.Context(), rest)
	out.take()

	masked := regexp.MustCompile(`"ts":"[^"]*"|"latency":[0-9.e-]+`)
	tests := []struct {
		name, method, path, token, body string
		header                          []string
		want                            string
	}{
		{"variable read with a correlation id", "GET", "/execution/variables/x", exec, "", []string{"Correlation-Id", "cid-1"},
			`{"level":"info","ts":T,"msg":"request","method":"GET","route":"/execution/variables/*","status":404,"latency":L,"correlation_id":"cid-1","sub":"` + id + `","scope":"execution","jti":"` + execClaims.ID + `"}`},
		{"task instance route", "PUT", "/execution/task-instances/" + id + "/heartbeat", exec, `{"hostname":"worker-a","pid":4242}`, nil,
			`{"level":"info","ts":T,"msg":"request","method":"PUT","route":"/execution/task-instances/:task_instance_id/heartbeat","status":204,"latency":L,"ti_id":"` + id + `","sub":"` + id + `","scope":"execution","jti":"` + execClaims.ID + `"}`},
		{"refused token", "GET", "/execution/connections/pg", "not-a-token", "", nil,
			`{"level":"info","ts":T,"msg":"request","method":"GET","route":"/execution/connections/:connection_id","status":403,"latency":L,"auth_error":"unknown token"}`},
		{"missing token", "GET", "/execution/connections/pg", "", "", nil,
			`{"level":"info","ts":T,"msg":"request","method":"GET","route":"/execution/connections/:connection_id","status":401,"latency":L}`},
		{"component token", "GET", "/execution/variables/x", comp, "", nil,
			`{"level":"info","ts":T,"msg":"request","method":"GET","route":"/execution/variables/*","status":404,"latency":L,"sub":"` + compClaims.Subject + `","scope":"execution","jti":"` + compClaims.ID + `","component":"triggerer"}`},
		{"REST token", "GET", "/api/v2/variables", rest, "", nil,
			`{"level":"info","ts":T,"msg":"request","method":"GET","route":"/api/v2/variables","status":200,"latency":L,"user":"ada","jti":"` + restClaims.ID + `"}`},
		{"unknown route", "GET", "/nowhere", "", "", nil,
			`{"level":"info","ts":T,"msg":"request","method":"GET","route":"/*","status":404,"latency":L}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.do(tt.method, tt.path, tt.token, tt.body, tt.header...)
			lines := out.take()
			if len(lines) != 1 {
				t.Fatalf("%d lines, want 1:\n%s", len(lines), strings.Join(lines, "\n"))
			}
			got := masked.ReplaceAllStringFunc(lines[0], func(s string) string {
				if strings.HasPrefix(s, `"ts"`) {
					return `"ts":T`
				}
				return `"latency":L`
			})
			if got != tt.want {
				t.Errorf("line\n got %s\nwant %s", got, tt.want)
			}
			if tt.token != "" && strings.Contains(lines[0], tt.token) {
				t.Errorf("the line holds the token: %s", lines[0])
			}
		})
	}
}
