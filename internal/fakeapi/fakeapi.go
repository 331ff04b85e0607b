// Package fakeapi is the one fake HTTP API of the client-side tests: the
// Execution API a worker or the client talks to, and the admin API the CLI's
// server mode talks to. It records every request as it arrived (escaped
// path, query, headers, body) and answers with a canned Reply chosen by an
// Answer function: a fixed script (Script), a table of routes (Table), or a
// function of the test's own that plays a small server.
//
// It knows nothing of taskgate's types, so any test package can use it
// without an import cycle. Only tests import this package.
package fakeapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Request is what the fake saw of one request.
type Request struct {
	Method string
	Path   string // escaped, as sent
	Query  string // raw, as sent
	Auth   string // the Authorization header, as sent
	Body   string
	Header http.Header
}

// Token returns the bearer token of the request's Authorization header.
func (r Request) Token() string { return strings.TrimPrefix(r.Auth, "Bearer ") }

// Reply is one canned answer. A reply with a body is sent as
// application/json.
type Reply struct {
	Status int
	Body   string
	Header map[string]string
}

// Answer chooses the reply to a request. Calls are serialized, in the order
// the requests are recorded, so an Answer may keep state without a lock of
// its own.
type Answer func(Request) Reply

// Server is a running fake; its URL is the base URL for a client. It is
// closed when the test ends.
type Server struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []Request
	answer Answer
}

// New starts a fake that answers with answer.
func New(t testing.TB, answer Answer) *Server {
	t.Helper()
	s := &Server{answer: answer}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	req := Request{
		Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Auth: r.Header.Get("Authorization"), Body: string(b), Header: r.Header.Clone(),
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	rep := s.answer(req)
	s.mu.Unlock()
	for k, v := range rep.Header {
		w.Header().Set(k, v)
	}
	if rep.Body != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(rep.Status)
	_, _ = io.WriteString(w, rep.Body)
}

// Requests returns every request recorded so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Matching returns the recorded requests with method ("" for any) whose
// path ends in suffix ("" for any).
func (s *Server) Matching(method, suffix string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.reqs {
		if (method == "" || r.Method == method) && strings.HasSuffix(r.Path, suffix) {
			out = append(out, r)
		}
	}
	return out
}

// Take returns the requests recorded since the last Take and forgets them,
// so that a test can check each step on its own.
func (s *Server) Take() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reqs
	s.reqs = nil
	return r
}

// Script answers the n-th request with replies[n], repeating the last reply
// past the end; without replies it answers 204 No Content.
func Script(replies ...Reply) Answer {
	n := 0
	return func(Request) Reply {
		if len(replies) == 0 {
			return Reply{Status: http.StatusNoContent}
		}
		rep := replies[min(n, len(replies)-1)]
		n++
		return rep
	}
}

// NotFound is the reply to a route a Table does not list, as Airflow's API
// answers it.
var NotFound = Reply{Status: http.StatusNotFound, Body: `{"detail":"Not Found"}`}

// Table answers from a map of "METHOD escaped-path" to reply, and NotFound
// for anything else.
func Table(answers map[string]Reply) Answer {
	return func(r Request) Reply {
		if rep, ok := answers[r.Method+" "+r.Path]; ok {
			return rep
		}
		return NotFound
	}
}
