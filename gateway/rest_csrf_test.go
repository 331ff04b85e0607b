package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecideRESTRequest(t *testing.T) {
	// A cookie-authenticated JSON POST from the gateway's own origin; each
	// case changes what it names.
	base := restRequest{Method: "POST", HasBody: true, ContentType: "application/json", FromCookie: true,
		Scheme: "http", Host: "127.0.0.1:8080"}
	tests := []struct {
		name string
		edit func(*restRequest)
		want *APIError
	}{
		{"cookie, neither Origin nor Sec-Fetch-Site", func(*restRequest) {}, errCrossSite},
		{"cookie, Sec-Fetch-Site same-origin", func(r *restRequest) { r.SecFetchSite = "same-origin" }, nil},
		{"cookie, Sec-Fetch-Site none (typed by the user)", func(r *restRequest) { r.SecFetchSite = "none" }, nil},
		{"cookie, Sec-Fetch-Site same-site", func(r *restRequest) { r.SecFetchSite = "same-site" }, errCrossSite},
		{"cookie, Sec-Fetch-Site cross-site", func(r *restRequest) { r.SecFetchSite = "cross-site" }, errCrossSite},
		{"cookie, Sec-Fetch-Site cross-site wins over a matching Origin", func(r *restRequest) {
			r.SecFetchSite, r.Origin = "cross-site", "http://127.0.0.1:8080"
		}, errCrossSite},
		{"cookie, own Origin", func(r *restRequest) { r.Origin = "http://127.0.0.1:8080" }, nil},
		{"cookie, own Origin in other case", func(r *restRequest) { r.Origin = "HTTP://127.0.0.1:8080" }, nil},
		{"cookie, Origin of another port", func(r *restRequest) { r.Origin = "http://127.0.0.1:8081" }, errCrossSite},
		{"cookie, Origin of another scheme", func(r *restRequest) { r.Origin = "https://127.0.0.1:8080" }, errCrossSite},
		{"cookie, foreign Origin", func(r *restRequest) { r.Origin = "http://evil.example" }, errCrossSite},
		{"cookie, Origin null", func(r *restRequest) { r.Origin = "null" }, errCrossSite},
		{"cookie, Origin without the default port of a Host with it", func(r *restRequest) {
			r.Host, r.Origin = "taskgate.example:80", "http://taskgate.example"
		}, nil},
		{"cookie, https Origin without the default port", func(r *restRequest) {
			r.Scheme, r.Host, r.Origin = "https", "taskgate.example:443", "https://taskgate.example"
		}, nil},
		{"cookie, foreign Origin, text/plain (the finding)", func(r *restRequest) {
			r.Origin, r.ContentType = "http://evil.example", "text/plain"
		}, errCrossSite},
		{"cookie, same origin, text/plain", func(r *restRequest) {
			r.SecFetchSite, r.ContentType = "same-origin", "text/plain"
		}, errNotJSON},
		{"cookie, DELETE from a foreign Origin", func(r *restRequest) {
			r.Method, r.HasBody, r.ContentType, r.Origin = "DELETE", false, "", "http://evil.example"
		}, errCrossSite},
		{"cookie, bodiless POST (logout) from the same origin", func(r *restRequest) {
			r.HasBody, r.ContentType, r.SecFetchSite = false, "", "same-origin"
		}, nil},
		{"cookie, GET from a foreign Origin", func(r *restRequest) {
			r.Method, r.HasBody, r.Origin, r.SecFetchSite = "GET", false, "http://evil.example", "cross-site"
		}, nil},
		{"cookie, HEAD without headers", func(r *restRequest) { r.Method, r.HasBody = "HEAD", false }, nil},
		{"cookie, OPTIONS without headers", func(r *restRequest) { r.Method, r.HasBody = "OPTIONS", false }, nil},
		{"bearer, JSON, foreign Origin", func(r *restRequest) { r.FromCookie, r.Origin = false, "http://evil.example" }, nil},
		{"bearer, JSON, no headers", func(r *restRequest) { r.FromCookie = false }, nil},
		{"bearer, JSON with charset", func(r *restRequest) {
			r.FromCookie, r.ContentType = false, "application/json; charset=utf-8"
		}, nil},
		{"bearer, application/merge-patch+json", func(r *restRequest) {
			r.FromCookie, r.ContentType = false, "application/merge-patch+json"
		}, nil},
		{"bearer, text/plain", func(r *restRequest) { r.FromCookie, r.ContentType = false, "text/plain" }, errNotJSON},
		{"bearer, form", func(r *restRequest) {
			r.FromCookie, r.ContentType = false, "application/x-www-form-urlencoded"
		}, errNotJSON},
		{"bearer, multipart", func(r *restRequest) {
			r.FromCookie, r.ContentType = false, "multipart/form-data; boundary=x"
		}, errNotJSON},
		{"bearer, no content type", func(r *restRequest) { r.FromCookie, r.ContentType = false, "" }, errNotJSON},
		{"bearer, unparsable content type", func(r *restRequest) {
			r.FromCookie, r.ContentType = false, "application/json; ="
		}, errNotJSON},
		{"bearer, PATCH text/plain", func(r *restRequest) {
			r.Method, r.FromCookie, r.ContentType = "PATCH", false, "text/plain"
		}, errNotJSON},
		{"bearer, bodiless POST without content type", func(r *restRequest) {
			r.FromCookie, r.HasBody, r.ContentType = false, false, ""
		}, nil},
		{"login (no token), text/plain", func(r *restRequest) { r.FromCookie, r.ContentType = false, "text/plain" }, errNotJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			tt.edit(&in)
			if got := decideRESTRequest(in); got != tt.want {
				t.Errorf("decideRESTRequest(%+v) = %v, want %v", in, got, tt.want)
			}
		})
	}
}

func TestRESTRequestOf(t *testing.T) {
	req := httptest.NewRequest("POST", "http://gw.example:8080/api/v2/users", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	want := restRequest{Method: "POST", HasBody: true, ContentType: "text/plain", FromCookie: true,
		Origin: "http://evil.example", SecFetchSite: "cross-site", Scheme: "http", Host: "gw.example:8080"}
	if diff := cmp.Diff(want, restRequestOf(req, true)); diff != "" {
		t.Errorf("restRequestOf (-want +got):\n%s", diff)
	}
	empty := httptest.NewRequest("POST", "https://gw.example/auth/logout", http.NoBody)
	if got := restRequestOf(empty, false); got.HasBody || got.Scheme != "https" {
		t.Errorf("bodiless TLS request: %+v, want HasBody false, scheme https", got)
	}
}
