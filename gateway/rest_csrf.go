package gateway

import (
	"mime"
	"net/http"
	"strings"
)

// The operator REST API is also a browser's API: the _token cookie rides
// along on every request a browser sends to the gateway, including those a
// foreign page makes it send (a form post, a no-cors fetch). Such a request
// can neither set Authorization nor Content-Type: application/json without
// a CORS preflight the gateway never grants, and a browser tells where it
// comes from in Origin and Sec-Fetch-Site. decideRESTRequest turns those
// facts into the one decision, so that no handler has to remember it.

var (
	// errNotJSON answers a JSON route whose body is declared as anything
	// but JSON: a cross-site form or no-cors fetch can send text/plain or no
	// type at all, never application/json.
	errNotJSON = &APIError{Status: http.StatusUnsupportedMediaType,
		Detail: "Unsupported Media Type: the body must be sent as Content-Type: application/json"}
	// errCrossSite answers a cookie-authenticated write that does not prove
	// it comes from the gateway's own origin.
	errCrossSite = &APIError{Status: http.StatusForbidden,
		Detail: "Cross-site request refused: a write authenticated by the _token cookie must come from the same origin (Origin or Sec-Fetch-Site); API clients send Authorization: Bearer"}
)

// restRequest is what decideRESTRequest needs to know about a request to the
// operator REST API (/auth/…, /api/v2/…).
type restRequest struct {
	Method string
	// HasBody: the request carries a body (a Content-Length above zero, or
	// one of unknown length).
	HasBody bool
	// ContentType is the Content-Type header, "" when absent.
	ContentType string
	// FromCookie: the request is authenticated by the _token cookie rather
	// than by Authorization: Bearer or ?token=.
	FromCookie bool
	// Origin and SecFetchSite are the headers of that name, "" when absent.
	Origin       string
	SecFetchSite string
	// Scheme ("http" or "https") and Host (the Host header) make the
	// request's own origin.
	Scheme string
	Host   string
}

// restRequestOf collects the facts about r; fromCookie says how it was
// authenticated.
func restRequestOf(r *http.Request, fromCookie bool) restRequest {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return restRequest{
		Method:       r.Method,
		HasBody:      r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody,
		ContentType:  r.Header.Get("Content-Type"),
		FromCookie:   fromCookie,
		Origin:       r.Header.Get("Origin"),
		SecFetchSite: r.Header.Get("Sec-Fetch-Site"),
		Scheme:       scheme,
		Host:         r.Host,
	}
}

// decideRESTRequest is the one decision about the shape and provenance of a
// REST request, taken after its token was accepted: nil allows it.
//
//   - A cookie-authenticated state change (any method but GET, HEAD and
//     OPTIONS) must come from the gateway's own origin: Sec-Fetch-Site
//     same-origin or none (typed by the user) passes; any other
//     Sec-Fetch-Site is refused; without it, Origin must equal the request's
//     own scheme://host. With neither header the write is refused too:
//     every browser that matters sends one of them on a POST, and a client
//     that is no browser has no reason to use the cookie instead of
//     Authorization: Bearer. 403.
//   - A POST, PUT or PATCH with a body must declare it JSON
//     (application/json or application/…+json, parameters allowed), however
//     it is authenticated: the REST routes only read JSON bodies. 415.
//
// Requests authenticated by bearer token pass the first rule: a foreign page
// cannot make a browser send one.
func decideRESTRequest(in restRequest) *APIError {
	switch in.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if in.FromCookie && !sameOrigin(in) {
		return errCrossSite
	}
	switch in.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		if in.HasBody && !isJSON(in.ContentType) {
			return errNotJSON
		}
	}
	return nil
}

// sameOrigin reports whether a browser says the request comes from the
// gateway's own origin.
func sameOrigin(in restRequest) bool {
	if in.SecFetchSite != "" {
		site := strings.ToLower(strings.TrimSpace(in.SecFetchSite))
		return site == "same-origin" || site == "none"
	}
	if in.Origin == "" || in.Host == "" {
		return false
	}
	return strings.EqualFold(normalizeOrigin(in.Origin), normalizeOrigin(in.Scheme+"://"+in.Host))
}

// normalizeOrigin drops the scheme's default port, which an Origin header
// leaves out while a Host header may carry it.
func normalizeOrigin(o string) string {
	o = strings.TrimSuffix(strings.TrimSpace(o), "/")
	for _, def := range []string{"http://:80", "https://:443"} {
		scheme, port, _ := strings.Cut(def, "://")
		if strings.HasPrefix(strings.ToLower(o), scheme+"://") && strings.HasSuffix(o, port) {
			return o[:len(o)-len(port)]
		}
	}
	return o
}

// isJSON reports whether a Content-Type names JSON.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}
