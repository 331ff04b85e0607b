package gateway

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/taskgate/taskgate/metrics"
	"github.com/taskgate/taskgate/scopes"
)

// accessFields is the most fields an access-log line carries.
const accessFields = 12

// requestState is what the gateway learns about one request: the claims of
// its token, or why the token was refused, for the handlers, the renewal
// hook and the access log. It wraps the request's echo.Context, and
// accessLog takes it from a pool, so that a request pays neither for Echo's
// c.Set (a map and a lock per request) nor for the log line's field slice.
type requestState struct {
	echo.Context
	// claims are a task or component token's, restClaims a REST token's.
	claims     *scopes.Claims
	restClaims *scopes.Claims
	// authError is the reason a token was refused, for the log line only;
	// refused says that it is set.
	authError string
	refused   bool
	// loggedOut: the handler revoked the request's own REST token, which
	// must then not be renewed on the way out.
	loggedOut bool
	// plan serves an Execution API version older than the newest; nil
	// for the newest (pickVersion).
	plan *versionPlan
	// route holds the metrics of the route Echo matched (meter); nil for
	// an unmatched request or without metrics.
	route *metrics.Route
	// entry and fields are the request's access-log line.
	entry  AccessEntry
	fields [accessFields]zap.Field
}

// stateOf returns the state of the request c belongs to. Every handler and
// middleware past accessLog receives the requestState as its context.
func stateOf(c echo.Context) *requestState { return c.(*requestState) }

// claimsOf returns the validated claims of the request's task or component
// token, or nil.
func claimsOf(c echo.Context) *scopes.Claims { return stateOf(c).claims }

// restClaimsOf returns the validated claims of the request's REST token, or
// nil.
func restClaimsOf(c echo.Context) *scopes.Claims { return stateOf(c).restClaims }

// refuse records why the request's token was refused, for the access log:
// the reason is never sent to the caller.
func refuse(c echo.Context, reason string) {
	st := stateOf(c)
	st.authError, st.refused = reason, true
}

// errBodyNotUTF8 answers a body whose bytes are not UTF-8 with FastAPI's
// words: FastAPI decodes a JSON body to text before parsing it, and a body
// it cannot decode is this 400, not a 422.
var errBodyNotUTF8 = &APIError{Status: http.StatusBadRequest, Detail: "There was an error parsing the body"}

// readBody reads the request body within the configured limit. Every route
// that takes a body, on the Execution API and the admin API alike, reads it
// here, so this is where a body that is not UTF-8 text is refused: decoded
// as JSON it would become U+FFFD in place of the bytes sent, and be stored
// so, altered without a word.
func readBody(c echo.Context) ([]byte, error) {
	b, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, errBodyTooLarge
		}
		return nil, &APIError{Status: http.StatusBadRequest, Detail: "Could not read request body"}
	}
	if !utf8.Valid(b) {
		return nil, errBodyNotUTF8
	}
	return b, nil
}

// readObject reads the request body within the limit and parses it as a
// JSON object for field-by-field validation.
func readObject(c echo.Context) (*object, error) {
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	o, verr := decodeObject(body)
	if verr != nil {
		return nil, verr
	}
	return o, nil
}

// pathParam returns a path parameter decoded. Echo matches on the raw path
// when the URL holds escapes (so an encoded '/' stays inside one parameter)
// and then hands the parameter over still escaped.
func pathParam(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	if c.Request().URL.RawPath == "" {
		return v, nil
	}
	d, err := url.PathUnescape(v)
	if err != nil {
		return "", paramError("path", name, "string_type", "Input should be a valid string", v)
	}
	return d, nil
}

// queryInt reads an integer query parameter within [lo, hi].
func queryInt(c echo.Context, name string, def, lo, hi int) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, paramError("query", name, "int_parsing",
			"Input should be a valid integer, unable to parse string as an integer", v)
	}
	if n < lo {
		return 0, paramError("query", name, "greater_than_equal",
			"Input should be greater than or equal to "+strconv.Itoa(lo), v)
	}
	if n > hi {
		return 0, paramError("query", name, "less_than_equal",
			"Input should be less than or equal to "+strconv.Itoa(hi), v)
	}
	return n, nil
}
