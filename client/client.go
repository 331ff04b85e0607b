// Package client is a Go SDK for the Airflow Execution API that taskgate
// serves: the calls a task worker makes with its task-scoped token.
//
// It behaves like Airflow's Task SDK client — the same
// headers, the same per-request timeout, the same retry policy (transport
// errors and 5xx only, capped and jittered exponential backoff) — with one
// deliberate difference: a token in Refreshed-API-Token is adopted only from
// a successful (2xx) response. Airflow's client swaps on any response, so a
// failed or forged error response can replace a good token.
//
// The client never logs, and never puts a token in an error: errors carry
// the status, the reason and message of the response, and any copy of the
// token a server echoed back is redacted from them.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// APIVersion is the Execution API version whose models this client speaks,
// sent in the Airflow-API-Version header of every request so that a server
// serving several versions answers in this one.
const APIVersion = "2026-06-30"

// Header names of the Execution API.
const (
	// RefreshedTokenHeader carries a renewed token on a response. The client
	// adopts it for every later request, but only from a 2xx response.
	RefreshedTokenHeader = "Refreshed-API-Token"
	// CorrelationHeader identifies one request in the server's log; the
	// client sends a fresh UUIDv7 with every HTTP request, as Airflow does.
	CorrelationHeader = "Correlation-Id"
	// VersionHeader names the API version of a request or response.
	VersionHeader = "Airflow-API-Version"
)

// Airflow's [workers] defaults, so that a Go worker retries as a Python one
// does.
const (
	// DefaultRetries is [workers] execution_api_retries: attempts per call.
	DefaultRetries = 5
	// DefaultRetryWaitMin is [workers] execution_api_retry_wait_min.
	DefaultRetryWaitMin = time.Second
	// DefaultRetryWaitMax is [workers] execution_api_retry_wait_max.
	DefaultRetryWaitMax = 90 * time.Second
	// DefaultTimeout is [workers] execution_api_timeout, per HTTP request.
	DefaultTimeout = 5 * time.Second
)

// maxResponseBytes bounds a response body read into memory.
const maxResponseBytes = 64 << 20

// modulePath is this module, looked up in the build information for the
// User-Agent version.
const modulePath = "github.com/taskgate/taskgate"

// Client calls one Execution API. It is safe for concurrent use: a worker's
// heartbeat and its task's calls share one client, and so one current token.
type Client struct {
	base      string // scheme://host[:port]/path, no trailing slash
	hc        *http.Client
	userAgent string
	attempts  int
	waitMin   time.Duration
	waitMax   time.Duration
	timeout   time.Duration
	sleep     func(ctx context.Context, d time.Duration) error
	jitter    func() float64
	now       func() time.Time
	onRetry   func(Retry)
	newID     func() (string, error)

	mu    sync.RWMutex
	token string
}

// Retry describes one failed attempt that is about to be retried; it is
// what WithRetryNotify receives, so a caller can log retries without the
// client logging anything itself.
type Retry struct {
	Method string
	Path   string // the path below the base URL, e.g. /task-instances/{id}/heartbeat
	// Attempt is the number of the attempt that failed, from 1.
	Attempt int
	// Wait is how long the client sleeps before the next attempt.
	Wait time.Duration
	// Status is the HTTP status of the failed attempt, 0 for a transport error.
	Status int
	// Err is the failure: an *APIError for a 5xx, else the transport error.
	Err error
}

// Option configures a Client.
type Option func(*Client)

// WithToken sets the bearer token of the first request: a workload token
// for Run, or an execution token to resume with.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient replaces the HTTP client (transport, TLS, proxies). Its
// Timeout should be zero: the client bounds each request itself.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithUserAgent replaces the User-Agent header; see UserAgent.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithRetries sets the attempts per call ([workers] execution_api_retries).
// Values below 1 mean a single attempt, as tenacity's stop_after_attempt does.
func WithRetries(attempts int) Option { return func(c *Client) { c.attempts = max(attempts, 1) } }

// WithRetryWait sets the bounds of the wait between attempts ([workers]
// execution_api_retry_wait_min and _max).
func WithRetryWait(minWait, maxWait time.Duration) Option {
	return func(c *Client) { c.waitMin, c.waitMax = minWait, maxWait }
}

// WithTimeout bounds every HTTP request ([workers] execution_api_timeout);
// zero or less leaves requests bounded only by the caller's context.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithSleep replaces the wait between attempts, so that tests can record
// the waits instead of sleeping. It must return early with an error when ctx
// is done.
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(c *Client) { c.sleep = sleep }
}

// WithJitter replaces the random source of the backoff: it returns a number
// in [0, 1) that places each wait between its lower and upper bound.
func WithJitter(jitter func() float64) Option { return func(c *Client) { c.jitter = jitter } }

// WithClock replaces the clock that dates state updates whose EndDate is zero.
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// WithRetryNotify registers a function called before each retry wait.
func WithRetryNotify(f func(Retry)) Option { return func(c *Client) { c.onRetry = f } }

// New returns a client for the Execution API at baseURL, e.g.
// "http://127.0.0.1:8080/execution" (Airflow's [core]
// execution_api_server_url). A URL with no path gets "/execution", where
// Airflow and taskgate mount the API.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q: want http(s)://host[:port][/path]", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: base URL %q: no query or fragment allowed", u.Redacted())
	}
	path := strings.TrimRight(u.EscapedPath(), "/")
	if path == "" {
		path = "/execution"
	}
	c := &Client{
		base:      u.Scheme + "://" + u.Host + path,
		hc:        &http.Client{},
		userAgent: UserAgent("taskgate-client"),
		attempts:  DefaultRetries,
		waitMin:   DefaultRetryWaitMin,
		waitMax:   DefaultRetryWaitMax,
		timeout:   DefaultTimeout,
		sleep:     sleepContext,
		jitter:    rand.Float64,
		now:       time.Now,
		onRetry:   func(Retry) {},
		newID: func() (string, error) {
			id, err := uuid.NewV7()
			return id.String(), err
		},
	}
	for _, o := range opts {
		o(c)
	}
	switch {
	case c.waitMin < 0 || c.waitMax < c.waitMin:
		return nil, fmt.Errorf("client: retry wait bounds [%s, %s]: want 0 <= min <= max", c.waitMin, c.waitMax)
	case c.hc == nil || c.sleep == nil || c.jitter == nil || c.now == nil || c.onRetry == nil:
		return nil, errors.New("client: nil option value")
	}
	return c, nil
}

// UserAgent is the User-Agent for a product built on this client:
// "product/<module version> (Go/<runtime version>)", in the shape of the
// Task SDK's "apache-airflow-task-sdk/<version> (Python/<version>)".
func UserAgent(product string) string {
	return product + "/" + moduleVersion() + " (Go/" + runtime.Version() + ")"
}

// moduleVersion is this module's version from the build information, or
// "devel" when built from a work tree without one.
func moduleVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := ""
	if info.Main.Path == modulePath {
		v = info.Main.Version
	}
	for _, d := range info.Deps {
		if d.Path == modulePath {
			v = d.Version
			if d.Replace != nil && d.Replace.Version != "" {
				v = d.Replace.Version
			}
		}
	}
	if v == "" || v == "(devel)" {
		return "devel"
	}
	return v
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// SetToken replaces the current bearer token.
func (c *Client) SetToken(token string) {
	c.mu.Lock()
	c.token = token
	c.mu.Unlock()
}

func (c *Client) currentToken() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.token
}

// backoff is the wait after failed attempt number attempt (from 1): a
// uniformly random duration in [min, clamp(2^(attempt-1) s, min, max)], which
// is tenacity's wait_random_exponential(multiplier=1, min, max) that
// Airflow's client uses.
func (c *Client) backoff(attempt int) time.Duration {
	exp := c.waitMax
	if shift := attempt - 1; shift < 40 {
		exp = time.Second << shift
	}
	high := min(max(exp, c.waitMin), c.waitMax)
	j := c.jitter()
	if j < 0 || j >= 1 {
		j = 0
	}
	return c.waitMin + time.Duration(j*float64(high-c.waitMin))
}

// result is one HTTP exchange.
type result struct {
	status int
	body   []byte
	sent   string // the token the request carried, redacted from errors
}

// do sends a request with retries and returns the body of a 2xx response;
// anything else is an *APIError or a transport error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte) (*result, error) {
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	for attempt := 1; ; attempt++ {
		res, err := c.once(ctx, method, target, body)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("client: %s %s: %w", method, path, ctx.Err())
		case err != nil:
			// A transport error: connection refused or reset, timeout.
			if attempt >= c.attempts {
				return nil, fmt.Errorf("client: %s %s: %w (attempt %d of %d)", method, path, err, attempt, c.attempts)
			}
		case res.status >= 200 && res.status < 300:
			return res, nil
		case res.status < 500:
			return nil, c.apiError(method, path, res)
		default:
			err = c.apiError(method, path, res)
			if attempt >= c.attempts {
				return nil, err
			}
		}
		wait := c.backoff(attempt)
		status := 0
		if res != nil {
			status = res.status
		}
		c.onRetry(Retry{Method: method, Path: path, Attempt: attempt, Wait: wait, Status: status, Err: err})
		if serr := c.sleep(ctx, wait); serr != nil {
			return nil, fmt.Errorf("client: %s %s: %w", method, path, serr)
		}
	}
}

// once makes one HTTP request, bounded by the per-request timeout. A
// Refreshed-API-Token on a 2xx response becomes the current token.
func (c *Client) once(ctx context.Context, method, target string, body []byte) (*result, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, err
	}
	cid, err := c.newID()
	if err != nil {
		return nil, err
	}
	req.Header.Set(CorrelationHeader, cid)
	req.Header.Set(VersionHeader, APIVersion)
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	sent := c.currentToken()
	if sent != "" {
		req.Header.Set("Authorization", "Bearer "+sent)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if len(b) > maxResponseBytes {
		return nil, fmt.Errorf("response body over %d bytes", maxResponseBytes)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if tok := resp.Header.Get(RefreshedTokenHeader); tok != "" {
			c.SetToken(tok)
		}
	}
	return &result{status: resp.StatusCode, body: b, sent: sent}, nil
}

// apiError builds the error of a non-2xx response, with every copy of the
// token sent and of the current token redacted from it.
func (c *Client) apiError(method, path string, res *result) *APIError {
	e := parseAPIError(res.status, res.body)
	e.Method, e.Path = method, path
	for _, tok := range []string{res.sent, c.currentToken()} {
		if tok == "" {
			continue
		}
		e.Message = strings.ReplaceAll(e.Message, tok, "[redacted]")
		if bytes.Contains(e.Detail, []byte(tok)) {
			e.Detail = bytes.ReplaceAll(e.Detail, []byte(tok), []byte("[redacted]"))
		}
	}
	return e
}

// call sends v as the JSON body (nil: none) and decodes a 2xx body into out
// (nil: ignored).
func (c *Client) call(ctx context.Context, method, path string, query url.Values, v, out any) error {
	var body []byte
	if v != nil {
		var err error
		if body, err = json.Marshal(v); err != nil {
			return fmt.Errorf("client: %s %s: encode request: %w", method, path, err)
		}
	}
	res, err := c.do(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(res.body, out); err != nil {
		return fmt.Errorf("client: %s %s: decode response: %w", method, path, err)
	}
	return nil
}

// Paths. Each segment is escaped; keys of variables and XComs may hold '/',
// which stays a separator as Airflow's {key:path} expects.

func tiPath(id, action string) string {
	return "/task-instances/" + url.PathEscape(id) + "/" + action
}

func keyPath(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

func mapIndexQuery(mapIndex int) url.Values {
	return url.Values{"map_index": {strconv.Itoa(mapIndex)}}
}
