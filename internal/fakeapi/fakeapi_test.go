package fakeapi

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type result struct {
	Status      int
	Body        string
	ContentType string
}

func do(t *testing.T, s *Server, method, path, body string) result {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, string(b), resp.Header.Get("Content-Type")}
}

func TestAnswers(t *testing.T) {
	type call struct{ method, path string }
	tests := map[string]struct {
		answer Answer
		calls  []call
		want   []result
	}{
		"empty script answers 204": {
			answer: Script(),
			calls:  []call{{"PUT", "/a"}, {"PUT", "/a"}},
			want:   []result{{Status: 204}, {Status: 204}},
		},
		"script repeats its last reply": {
			answer: Script(Reply{Status: 200, Body: `{}`}, Reply{Status: 409, Body: `{"detail":"x"}`}),
			calls:  []call{{"PUT", "/a"}, {"PUT", "/a"}, {"PUT", "/b"}},
			want: []result{
				{200, `{}`, "application/json"},
				{409, `{"detail":"x"}`, "application/json"},
				{409, `{"detail":"x"}`, "application/json"},
			},
		},
		"table by method and escaped path": {
			answer: Table(map[string]Reply{
				"GET /v/a%20b": {Status: 200, Body: `{"k":1}`},
				"POST /v":      {Status: 201},
			}),
			calls: []call{{"GET", "/v/a%20b"}, {"POST", "/v"}, {"GET", "/v"}},
			want: []result{
				{200, `{"k":1}`, "application/json"},
				{Status: 201},
				{404, `{"detail":"Not Found"}`, "application/json"},
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s := New(t, tt.answer)
			var got []result
			for _, c := range tt.calls {
				got = append(got, do(t, s, c.method, c.path, ""))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRecording(t *testing.T) {
	s := New(t, Script())
	do(t, s, "PATCH", "/ti/a%2Fb/run?x=1", `{"state":"running"}`)
	do(t, s, "PUT", "/ti/a%2Fb/heartbeat", "")
	all := s.Requests()
	if len(all) != 2 {
		t.Fatalf("%d requests, want 2", len(all))
	}
	for i := range all {
		all[i].Header = nil
	}
	want := []Request{
		{Method: "PATCH", Path: "/ti/a%2Fb/run", Query: "x=1", Auth: "Bearer tok", Body: `{"state":"running"}`},
		{Method: "PUT", Path: "/ti/a%2Fb/heartbeat", Auth: "Bearer tok"},
	}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("Requests (-want +got):\n%s", diff)
	}
	if got := all[0].Token(); got != "tok" {
		t.Errorf("Token() = %q, want tok", got)
	}
	if got := s.Matching("PUT", "/heartbeat"); len(got) != 1 || got[0].Method != "PUT" {
		t.Errorf("Matching(PUT, /heartbeat) = %+v", got)
	}
	if got := s.Matching("", ""); len(got) != 2 {
		t.Errorf("Matching(\"\", \"\") returned %d requests, want 2", len(got))
	}
	if got := s.Take(); len(got) != 2 {
		t.Errorf("Take returned %d requests, want 2", len(got))
	}
	if got := s.Take(); len(got) != 0 {
		t.Errorf("second Take returned %d requests, want 0", len(got))
	}
}
