package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/labstack/echo/v4"
)

// versionPlan is what serving one older version takes, built once from
// versionChanges: the routes that version has, and the rules that turn its
// requests into the newest version's and the newest responses into its.
type versionPlan struct {
	version string
	// index is the version's in apiVersions.
	index int
	// sameRoutes: the version has the newest version's routes, so its
	// router finds what the server's found.
	sameRoutes bool
	// router holds the Execution API routes the version has, with the
	// same guarded handlers as the server's own router.
	router   *echo.Router
	requests []requestRule
	// responses, by route ("METHOD /airflow/path").
	responses []*responseRule
}

// requestRule refuses or trims what a route's older request may not carry.
type requestRule struct {
	method string
	// template is the Airflow path template pattern matches.
	template string
	pattern  *regexp.Regexp
	// states limits the rule to bodies whose "state" is one of them.
	states []string
	// forbid: body fields the version's model does not have.
	forbid []string
	// query: query parameters the version's route does not have.
	query []string
	// refusedStates: "state" values the version's union does not have.
	refusedStates []string
	narrowed      []narrowedField
}

// responseRule rewrites a route's success body, step by step.
type responseRule struct {
	method   string
	template string
	pattern  *regexp.Regexp
	steps    []responseStep
}

// responseStep applies fn to every object at path, or drops fields there.
type responseStep struct {
	path []string
	fn   func(map[string]any)
	drop []string
}

// unversionedPaths are the routes Cadwyn serves outside every version: a
// request naming a version does not reach them.
var unversionedPaths = map[string]bool{docsPath: true, openAPIJSONPath: true}

const (
	docsPath        = "/execution/docs"
	openAPIJSONPath = "/execution/openapi.json"
)

// unversioned is unversionedPaths[p] without hashing p: it is asked on
// every request naming the newest version.
func unversioned(p string) bool { return p == docsPath || p == openAPIJSONPath }

// buildPlans makes one plan per version older than the newest. routes are
// the registered Execution API routes with their guarded handlers.
func buildPlans(e *echo.Echo, routes []route, versioned []*versionedRoute) []*versionPlan {
	plans := make([]*versionPlan, len(apiVersions)-1)
	head := len(apiVersions) - 1
	for vi := range plans {
		v := apiVersions[vi]
		p := &versionPlan{version: v, index: vi, router: echo.NewRouter(e), sameRoutes: true}
		for _, r := range routes {
			if unversionedPaths[r.path] {
				continue
			}
			tmpl, _ := airflowTemplate(r.path)
			present, _ := endpointAt(r.method, tmpl, vi)
			if atHead, _ := endpointAt(r.method, tmpl, head); present != atHead {
				p.sameRoutes = false
			}
			if present {
				p.router.Add(r.method, r.path, r.handler)
			}
		}
		p.router.Add(echo.RouteNotFound, "/*", func(echo.Context) error { return echo.ErrNotFound })
		p.requests, p.responses = rulesFor(v)
		plans[vi] = p
	}
	for _, vr := range versioned {
		vr.plans = make([]routeRules, len(plans))
		for vi, p := range plans {
			rr := &vr.plans[vi]
			for i := range p.requests {
				if r := &p.requests[i]; r.method == vr.method && mayMatch(r.template, vr.template) {
					rr.requests = append(rr.requests, r)
				}
			}
			for _, r := range p.responses {
				if r.method == vr.method && mayMatch(r.template, vr.template) {
					rr.responses = append(rr.responses, r)
				}
			}
		}
	}
	return plans
}

// versionedRoute is one Execution API route's share of every older
// version's rules (buildPlans fills plans, by version index).
type versionedRoute struct {
	method   string
	template string // Airflow's
	plans    []routeRules
}

// routeRules are the rules of one version that may apply to one route's
// requests, in the version's order; their patterns still decide.
type routeRules struct {
	requests  []*requestRule
	responses []*responseRule
}

// mayMatch reports whether a request that Echo routes to the route of
// Airflow template route may match a rule of template rule, whose pattern
// the decoded path is matched against. Where a segment of the route is a
// parameter, the decoded path may hold any number of segments (an escaped
// '/'), so from there on anything may match; before it, the route's literal
// segments must be the rule's or fall in a parameter of the rule.
func mayMatch(rule, route string) bool {
	rs := strings.Split(strings.TrimPrefix(rule, "/"), "/")
	es := strings.Split(strings.TrimPrefix(route, "/"), "/")
	for i, e := range es {
		if strings.HasPrefix(e, "{") || strings.Contains(e, "*") {
			return true
		}
		if i >= len(rs) {
			return false
		}
		switch r := rs[i]; {
		case strings.HasPrefix(r, "{") && strings.HasSuffix(r, ":path}"):
			return true
		case strings.HasPrefix(r, "{"):
		case r != e:
			return false
		}
	}
	return len(rs) == len(es)
}

// rulesFor collects the rules of every change newer than version v, newest
// first, as Cadwyn migrates a response down one version after another.
func rulesFor(v string) ([]requestRule, []*responseRule) {
	var reqs []requestRule
	byRoute := map[string]*responseRule{}
	var order []string
	resp := func(route string) *responseRule {
		if r, ok := byRoute[route]; ok {
			return r
		}
		m, p := splitRoute(route)
		r := &responseRule{method: m, template: p, pattern: templatePattern(p)}
		byRoute[route] = r
		order = append(order, route)
		return r
	}
	var drops []responseStepAt
	for _, ch := range versionChanges {
		if ch.version <= v {
			continue
		}
		for _, f := range ch.fields {
			for _, s := range sitesOf(f.model) {
				if s.request {
					m, p := splitRoute(s.route)
					reqs = append(reqs, requestRule{method: m, template: p, pattern: templatePattern(p), states: s.states,
						forbid: []string{f.name}})
				} else {
					drops = append(drops, responseStepAt{s.route, responseStep{path: s.path, drop: []string{f.name}}})
				}
			}
		}
		for _, sv := range ch.stateValues {
			for _, s := range sitesOf(sv.model) {
				m, p := splitRoute(s.route)
				reqs = append(reqs, requestRule{method: m, template: p, pattern: templatePattern(p), refusedStates: []string{sv.name}})
			}
		}
		for _, n := range ch.narrowed {
			for _, s := range sitesOf(n.model) {
				m, p := splitRoute(s.route)
				reqs = append(reqs, requestRule{method: m, template: p, pattern: templatePattern(p), states: s.states,
					narrowed: []narrowedField{n}})
			}
		}
		for _, q := range ch.queryParams {
			reqs = append(reqs, requestRule{method: q.method, template: q.path, pattern: templatePattern(q.path), query: []string{q.name}})
		}
		for _, cv := range ch.convert {
			if cv.path != "" {
				r := resp(cv.path)
				r.steps = append(r.steps, responseStep{fn: cv.fn})
				continue
			}
			for _, s := range sitesOf(cv.model) {
				if !s.request {
					r := resp(s.route)
					r.steps = append(r.steps, responseStep{path: s.path, fn: cv.fn})
				}
			}
		}
	}
	// Fields the version's models lack go last: Cadwyn serializes the
	// converted body through the older model, which drops them.
	for _, d := range drops {
		r := resp(d.route)
		r.steps = append(r.steps, d.step)
	}
	out := make([]*responseRule, len(order))
	for i, k := range order {
		out[i] = byRoute[k]
	}
	return reqs, out
}

type responseStepAt struct {
	route string
	step  responseStep
}

// sitesOf returns where model appears.
func sitesOf(model string) []modelSite {
	var out []modelSite
	for _, s := range modelSites {
		if s.model == model {
			out = append(out, s)
		}
	}
	return out
}

// pickVersion reads Airflow-API-Version as Cadwyn does on every Execution
// API request. Without the header the request gets the newest version and
// reaches the unversioned routes too (docs, openapi.json). With it, the
// response echoes the value as sent, and the request is routed among the
// routes of the version asked for, or of the newest older one when that
// version does not exist (Cadwyn compares the strings, so a value that is no
// date at all still picks a version or none); older than every version, or
// empty, it reaches no versioned route and answers 404. A request at the
// newest version pays one header lookup and a comparison.
func (s *Server) pickVersion(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		vals, asked := req.Header[versionHeader]
		if !asked {
			return next(c)
		}
		v := vals[0]
		if !strings.HasPrefix(req.URL.Path, "/execution/") {
			// The operator API has no versions; its responses name the
			// version asked for, as the Execution API's do.
			if v != APIVersion {
				c.Response().Header()[versionHeader] = vals[:1:1]
			}
			return next(c)
		}
		if v == APIVersion {
			if unversioned(c.Path()) {
				return echo.ErrNotFound
			}
			return next(c)
		}
		c.Response().Header()[versionHeader] = vals[:1:1]
		if v == "" {
			// Cadwyn treats an empty version as none: the unversioned
			// routes only.
			if unversioned(c.Path()) {
				return next(c)
			}
			return echo.ErrNotFound
		}
		vi := versionIndex(v)
		switch {
		case vi < 0:
			return echo.ErrNotFound
		case vi == len(apiVersions)-1:
			if unversioned(c.Path()) {
				return echo.ErrNotFound
			}
			return next(c)
		}
		p := s.plans[vi]
		st := stateOf(c)
		if !p.sameRoutes || unversioned(c.Path()) {
			// The version's router may find another route than the
			// server's did.
			p.router.Find(req.Method, echo.GetPath(req), st.Context)
		}
		st.plan = p
		return next(c)
	}
}

// convertVersion wraps an Execution API handler, inside its token check:
// for a request of an older version it applies the version's request rules
// before the handler and converts its success body after.
// A route no rule of the version may apply to is called as it is.
func convertVersion(h echo.HandlerFunc, vr *versionedRoute) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := stateOf(c).plan
		if p == nil {
			return h(c)
		}
		rr := &vr.plans[p.index]
		if len(rr.requests) == 0 && len(rr.responses) == 0 {
			return h(c)
		}
		return rr.serve(c, h)
	}
}

func (rr *routeRules) serve(c echo.Context, h echo.HandlerFunc) error {
	req := c.Request()
	path := req.URL.Path
	var bodyRules []*requestRule
	for _, r := range rr.requests {
		if r.method != req.Method || !r.pattern.MatchString(path) {
			continue
		}
		if len(r.query) > 0 {
			q := req.URL.Query()
			for _, name := range r.query {
				q.Del(name)
			}
			req.URL.RawQuery = q.Encode()
			continue
		}
		bodyRules = append(bodyRules, r)
	}
	if len(bodyRules) > 0 {
		if err := checkRequest(c, bodyRules); err != nil {
			return err
		}
	}
	var rule *responseRule
	for _, r := range rr.responses {
		if r.method == req.Method && r.pattern.MatchString(path) {
			rule = r
			break
		}
	}
	if rule == nil {
		return h(c)
	}
	return convertResponse(c, h, rule)
}

// checkRequest applies the body rules: a field the version's model lacks
// is refused as pydantic's extra="forbid" refuses it, a state the version's
// union lacks as a wrong literal, a value of a type the version's field did
// not take as that type's error. The body is put back for the handler.
func checkRequest(c echo.Context, rules []*requestRule) error {
	req := c.Request()
	b, err := readBody(c)
	if err != nil {
		return err
	}
	req.Body = io.NopCloser(bytes.NewReader(b))
	o, verr := decodeObject(b)
	if verr != nil {
		return nil // the handler answers for a body that is no object
	}
	var state string
	if raw, ok := o.fields["state"]; ok {
		_ = json.Unmarshal(raw, &state)
	}
	for _, r := range rules {
		if r.states != nil && !contains(r.states, state) {
			continue
		}
		for _, f := range r.forbid {
			if v, ok := o.fields[f]; ok {
				o.fail(f, "extra_forbidden", "Extra inputs are not permitted", rawInput(v))
			}
		}
		if contains(r.refusedStates, state) {
			var allowed []string
			for _, s := range append(append([]string{"success"}, terminalStates...), intermediateStates...) {
				if !contains(r.refusedStates, s) {
					allowed = append(allowed, s)
				}
			}
			o.literalFail("state", allowed, state)
		}
		for _, n := range r.narrowed {
			v, ok := o.fields[n.name]
			if !ok || isNull(v) || jsonKindIn(v, n.kinds) {
				continue
			}
			for _, k := range n.kinds {
				loc := []any{"body", n.name}
				if len(n.kinds) > 1 {
					loc = append(loc, map[string]string{"object": "dict[str,any]", "string": "str"}[k])
				}
				typ, msg := "dict_type", "Input should be a valid dictionary"
				if k == "string" {
					typ, msg = "string_type", "Input should be a valid string"
				}
				o.errs = append(o.errs, FieldError{Type: typ, Loc: loc, Msg: msg, Input: rawInput(v)})
			}
		}
	}
	if verr := o.err(); verr != nil {
		return verr
	}
	return nil
}

// jsonKindIn reports whether the JSON value v is one of kinds.
func jsonKindIn(v json.RawMessage, kinds []string) bool {
	t := bytes.TrimSpace(v)
	if len(t) == 0 {
		return false
	}
	kind := map[byte]string{'{': "object", '"': "string", '[': "array"}[t[0]]
	return contains(kinds, kind)
}

// bufferedWriter holds a handler's response so that it can be converted
// before it is sent; headers go to the real writer's map.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferedWriter) Header() http.Header         { return w.header }
func (w *bufferedWriter) WriteHeader(status int)      { w.status = status }
func (w *bufferedWriter) Write(p []byte) (int, error) { return w.body.Write(p) }

// convertResponse runs the handler into a buffer and sends its success
// body converted by rule. Errors are sent as they are: Cadwyn migrates only
// successful responses.
func convertResponse(c echo.Context, h echo.HandlerFunc, rule *responseRule) error {
	res := c.Response()
	orig := res.Writer
	buf := &bufferedWriter{header: orig.Header()}
	res.Writer = buf
	err := h(c)
	res.Writer = orig
	if !res.Committed {
		return err
	}
	body := buf.body.Bytes()
	if err == nil && res.Status >= 200 && res.Status < 300 && len(bytes.TrimSpace(body)) > 0 {
		if out, ok := convertBody(body, rule); ok {
			body = out
			res.Size = int64(len(out))
			orig.Header().Del(echo.HeaderContentLength)
		}
	}
	orig.WriteHeader(res.Status)
	_, _ = orig.Write(body)
	return err
}

// convertBody applies rule's steps to a JSON body.
func convertBody(body []byte, rule *responseRule) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	for _, st := range rule.steps {
		at(v, st.path, func(m map[string]any) {
			if st.fn != nil {
				st.fn(m)
			}
			for _, k := range st.drop {
				delete(m, k)
			}
		})
	}
	var out bytes.Buffer
	if err := json.NewEncoder(&out).Encode(v); err != nil {
		return nil, false
	}
	return out.Bytes(), true
}

// at calls fn on every object path reaches in v.
func at(v any, path []string, fn func(map[string]any)) {
	if len(path) == 0 {
		if m, ok := v.(map[string]any); ok {
			fn(m)
		}
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	key, list := strings.CutSuffix(path[0], "[]")
	next := m[key]
	if !list {
		at(next, path[1:], fn)
		return
	}
	items, _ := next.([]any)
	for _, it := range items {
		at(it, path[1:], fn)
	}
}
