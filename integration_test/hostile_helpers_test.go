package integration_test

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// soakMode reports whether the long versions of the hostile, concurrency and
// crash tests run: SOAK=1, as `make soak` (scripts/soak.sh) sets it.
func soakMode() bool { return os.Getenv("SOAK") == "1" }

// soakScaled is normal in `make test` and long under SOAK=1.
func soakScaled(normal, long int) int {
	if soakMode() {
		return long
	}
	return normal
}

// noAuthLimit is the environment that turns the gateway's auth-failure
// limit off. The hostile tests send thousands of refused tokens from one
// address on purpose; what they check is each refusal's answer, which the
// limit would replace with 429 after the first minute's worth.
// TestHostileTokensUnderAuthLimit checks the limit's own answers.
const noAuthLimit = "AIRFLOW__TASKGATE__AUTH_FAILURES_PER_MINUTE=0"

// rawAddr is the server's host:port, for raw connections.
func (s *server) rawAddr() string { return strings.TrimPrefix(s.URL, "http://") }

// mustBeAlive fails the test if the server process has exited.
func (s *server) mustBeAlive(t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
		t.Fatalf("taskgate serve exited (%v); output:\n%s", s.waitErr, s.logs)
	default:
	}
}

// hmacSigner signs with HMAC over h and key, as HS256/384/512 do.
func hmacSigner(h func() hash.Hash, key []byte) func(string) []byte {
	return func(in string) []byte {
		mac := hmac.New(h, key)
		mac.Write([]byte(in))
		return mac.Sum(nil)
	}
}

// trapServer counts every request made to it: a token names it in jku, x5u
// or kid, and nothing may ever fetch from it. It answers with a JWKS and a
// secret an attacker would like the gateway to trust.
type trapServer struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	urls []string
}

func newTrapServer(t *testing.T, body string) *trapServer {
	t.Helper()
	ts := &trapServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.hits.Add(1)
		ts.mu.Lock()
		ts.urls = append(ts.urls, r.Method+" "+r.URL.String())
		ts.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// wantNoHits fails the test if anything fetched from the trap.
func (ts *trapServer) wantNoHits(t *testing.T) {
	t.Helper()
	if n := ts.hits.Load(); n != 0 {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		t.Errorf("the gateway fetched %d times from a URL named in a token header: %v", n, ts.urls)
	}
}

// rawResult is one response read off a raw connection.
type rawResult struct {
	status int
	header http.Header
	body   []byte
}

func (r *rawResult) String() string {
	if r == nil {
		return "<no response>"
	}
	return fmt.Sprintf("%d %q", r.status, clipText(string(r.body), 200))
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("…(%d bytes)", len(s))
}

// rawExchange writes req (whatever bytes, valid HTTP or not) on a new
// connection while reading one response from it, and closes the connection.
// Write errors are ignored: a server may answer and close before it read a
// body it refuses.
func rawExchange(addr string, req []byte, timeout time.Duration) (*rawResult, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	go func() { _, _ = conn.Write(req) }()
	return readRaw(bufio.NewReader(conn))
}

// rawStream is rawExchange for a body written in pieces by write (which
// should stop at its first error); the response is read concurrently.
func rawStream(addr, head string, write func(w io.Writer) error, timeout time.Duration) (*rawResult, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := io.WriteString(conn, head); err != nil {
			return
		}
		_ = write(conn)
	}()
	res, err := readRaw(bufio.NewReader(conn))
	conn.Close()
	<-done
	return res, err
}

func readRaw(br *bufio.Reader) (*rawResult, error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return &rawResult{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// plainResult is an answer of the gateway to a request built by hand.
type plainResult struct {
	status int
	header http.Header
	body   []byte
}

func (r *plainResult) String() string {
	return fmt.Sprintf("%d %s", r.status, clipText(string(r.body), 300))
}

// detail returns the body's "detail" when it is a string.
func (r *plainResult) detail() string {
	var b struct {
		Detail any `json:"detail"`
	}
	if json.Unmarshal(r.body, &b) != nil {
		return ""
	}
	s, _ := b.Detail.(string)
	return s
}

// doPlain makes one request with exactly the given headers (nothing added
// but what net/http always sends) and returns the answer. It never fails
// the test: callers running it from many goroutines report errors
// themselves.
func doPlain(c *http.Client, method, url string, hdr map[string]string, body []byte) (*plainResult, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &plainResult{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// newPooledClient is a client that keeps up to n connections to the server,
// so that n goroutines really run n requests at once.
func newPooledClient(n int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = n
	tr.MaxIdleConnsPerHost = n
	tr.MaxConnsPerHost = 0
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// headerSafe reports whether s can travel in an HTTP header value as the
// Go client sends it (no control characters but tab).
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// forEachParallel runs fn(i) for i in [0, n) on workers goroutines.
func forEachParallel(n, workers int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}
