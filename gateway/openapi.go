package gateway

import (
	"encoding/json"
	"html"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// The OpenAPI document of the Execution API, generated from the route
// table (routes.go) and each route's body types (modelTables), one per
// version with versionChanges applied, as Cadwyn serves
// /execution/openapi.json?version=…. Nothing in it is kept by hand.

// schemaNames gives the Go types whose Airflow model has another name that
// name, so that the document and versionChanges speak of the same models.
var schemaNames = map[reflect.Type]string{
	reflect.TypeOf(runContext{}):           "TIRunContext",
	reflect.TypeOf(clearDagRunPayload{}):   "ClearDagRunPayload",
	reflect.TypeOf(triggerDagRunPayload{}): "TriggerDAGRunPayload",
	reflect.TypeOf(assetEventsResponse{}):  "AssetEventsResponse",
	reflect.TypeOf(assetEventResponse{}):   "AssetEventResponse",
	reflect.TypeOf(dagRunAssetReference{}): "DagRunAssetReference",
}

// routeModels merges modelTables.
func routeModels() map[string]routeModel {
	out := map[string]routeModel{}
	for _, t := range modelTables {
		for k, m := range t {
			out[k] = m
		}
	}
	return out
}

// openAPIRoutes are the Execution API routes the document describes: every
// /execution route but the documentation itself.
func openAPIRoutes() []Route {
	var out []Route
	for _, r := range RouteTable() {
		if _, ok := airflowTemplate(r.Path); ok && !unversionedPaths[r.Path] {
			out = append(out, r)
		}
	}
	return out
}

// openAPIPath is the route's path in the document, relative to the
// /execution server: ":name" as "{name}", a trailing "*" as the routeModel's
// Wildcard parameter.
func openAPIPath(r Route, m routeModel) string {
	tmpl, _ := airflowTemplate(r.Path)
	if strings.HasSuffix(tmpl, "/*") {
		name := m.Wildcard
		if name == "" {
			name = "path"
		}
		tmpl = strings.TrimSuffix(tmpl, "*") + "{" + name + "}"
	}
	return tmpl
}

// openAPIDocument builds the document of version vi (an index in
// apiVersions).
func openAPIDocument(vi int) map[string]any {
	version := apiVersions[vi]
	models := routeModels()
	g := &schemaGen{schemas: map[string]any{}, types: map[string]reflect.Type{}}
	paths := map[string]any{}
	for _, r := range openAPIRoutes() {
		tmpl, _ := airflowTemplate(r.Path)
		if present, _ := endpointAt(r.Method, tmpl, vi); !present {
			continue
		}
		m := models[r.Method+" "+r.Path]
		p := openAPIPath(r, m)
		item, _ := paths[p].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}
		item[strings.ToLower(r.Method)] = g.operation(r, m, p)
	}
	g.schemas["HTTPValidationError"] = map[string]any{
		"type": "object", "title": "HTTPValidationError",
		"properties": map[string]any{"detail": map[string]any{"type": "array",
			"items": map[string]any{"$ref": "#/components/schemas/ValidationError"}}},
	}
	g.schemas["ValidationError"] = map[string]any{
		"type": "object", "title": "ValidationError", "required": []any{"loc", "msg", "type"},
		"properties": map[string]any{
			"loc":  map[string]any{"type": "array", "items": map[string]any{"anyOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}},
			"msg":  map[string]any{"type": "string"},
			"type": map[string]any{"type": "string"},
		},
	}
	// Fields the version's models do not have yet.
	for _, ch := range versionChanges {
		if ch.version <= version {
			continue
		}
		for _, f := range ch.fields {
			if s, ok := g.schemas[f.model].(map[string]any); ok {
				if props, ok := s["properties"].(map[string]any); ok {
					delete(props, f.name)
				}
				if req, ok := s["required"].([]any); ok {
					s["required"] = without(req, f.name)
				}
			}
		}
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "Airflow Task Execution API",
			"description": "The private Airflow Task Execution API, as taskgate serves it.",
			"version":     version,
		},
		"servers": []any{map[string]any{"url": "/execution"}},
		"paths":   paths,
		"components": map[string]any{
			"schemas": g.schemas,
			"securitySchemes": map[string]any{
				"JWTBearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
			},
		},
	}
}

func without(xs []any, s string) []any {
	out := xs[:0:0]
	for _, x := range xs {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// schemaGen turns Go types into JSON Schemas, named structs as components.
type schemaGen struct {
	schemas map[string]any
	types   map[string]reflect.Type
}

func (g *schemaGen) operation(r Route, m routeModel, path string) map[string]any {
	op := map[string]any{
		"operationId": operationID(r.Method, path),
		"tags":        []any{tagOf(path)},
	}
	var params []any
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			name := strings.Trim(seg, "{}")
			params = append(params, map[string]any{"name": name, "in": "path", "required": true,
				"schema": map[string]any{"type": "string", "title": name}})
		}
	}
	for _, q := range m.Query {
		params = append(params, map[string]any{"name": q, "in": "query", "required": false, "schema": map[string]any{}})
	}
	if params != nil {
		op["parameters"] = params
	}
	if m.Request != nil {
		op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
			"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(m.Request))}}}
	}
	status := m.Status
	if status == 0 {
		status = http.StatusOK
	}
	ok := map[string]any{"description": http.StatusText(status)}
	if m.Response != nil {
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(m.Response))}}
	}
	responses := map[string]any{strconv.Itoa(status): ok}
	if params != nil || m.Request != nil {
		responses["422"] = map[string]any{"description": "Validation Error", "content": map[string]any{
			"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/HTTPValidationError"}}}}
	}
	op["responses"] = responses
	if r.Policy != nil {
		op["security"] = []any{map[string]any{"JWTBearer": []any{}}}
	}
	return op
}

// operationID names an operation after its method and path, unique in the
// document.
func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, r := range path {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// tagOf is the path's first segment, the tag Airflow groups routes by.
func tagOf(path string) string {
	seg, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return seg
}

// schemaer is a type that gives its own schema (a union, for one).
type schemaer interface {
	openAPISchema(g *schemaGen) map[string]any
}

var (
	schemaerType = reflect.TypeOf((*schemaer)(nil)).Elem()
	timeType     = reflect.TypeOf(time.Time{})
	rawType      = reflect.TypeOf(json.RawMessage{})
)

// schema returns t's schema: a $ref for named structs (added to the
// components), inline otherwise.
func (g *schemaGen) schema(t reflect.Type) map[string]any {
	if t.Implements(schemaerType) {
		return reflect.Zero(t).Interface().(schemaer).openAPISchema(g)
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawType:
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return map[string]any{"anyOf": []any{g.schema(t.Elem()), map[string]any{"type": "null"}}}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		name := schemaNames[t]
		if name == "" {
			name = t.Name()
		}
		if name == "" {
			return g.object(t)
		}
		if prev, ok := g.types[name]; ok && prev != t {
			name = strings.ReplaceAll(t.String(), ".", "_")
		}
		if _, ok := g.types[name]; !ok {
			g.types[name] = t
			g.schemas[name] = nil // a placeholder against recursion
			s := g.object(t)
			s["title"] = name
			g.schemas[name] = s
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

// object is a struct's schema: its JSON fields, embedded structs' fields
// included; a field without omitempty is required.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []any
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" || (!f.IsExported() && !f.Anonymous) {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = g.schema(f.Type)
			if !strings.Contains(opts, "omitempty") {
				required = append(required, name)
			}
		}
	}
	walk(t)
	s := map[string]any{"type": "object", "properties": props}
	if required != nil {
		sort.Slice(required, func(i, j int) bool { return required[i].(string) < required[j].(string) })
		s["required"] = required
	}
	return s
}

// openAPIJSON holds each version's document, encoded once at start-up.
type openAPIJSON map[string][]byte

func buildOpenAPIJSON() (openAPIJSON, error) {
	out := openAPIJSON{}
	for vi, v := range apiVersions {
		b, err := json.Marshal(openAPIDocument(vi))
		if err != nil {
			return nil, err
		}
		out[v] = b
	}
	return out, nil
}

// handleOpenAPI is GET /execution/openapi.json: the document of the version
// ?version= (or the Airflow-API-Version header) names, as Cadwyn answers
// it; no such version, or none named, is Cadwyn's 404.
func (s *Server) handleOpenAPI(c echo.Context) error {
	// Python's `query or header`: an empty ?version= falls back to the
	// header, and neither given is None.
	v, shown := c.QueryParam("version"), ""
	if v != "" {
		shown = v
	} else if vals, ok := c.Request().Header[versionHeader]; ok {
		v, shown = vals[0], vals[0]
	} else {
		shown = "None"
	}
	if doc, ok := s.openAPI[v]; ok {
		return c.JSONBlob(http.StatusOK, doc)
	}
	return &APIError{Status: http.StatusNotFound, Detail: "OpenApi file of with version `" + shown + "` not found"}
}

// handleDocs is GET /execution/docs. Cadwyn serves a Swagger UI that loads
// its scripts from a CDN; taskgate serves no third-party code, so this is a
// self-contained page: every version, its routes, and a link to its
// OpenAPI document, which any OpenAPI viewer opens.
func (s *Server) handleDocs(c echo.Context) error {
	var b strings.Builder
	b.WriteString(`<!doctype html><html lang="en"><head><meta charset="utf-8">` +
		`<title>Airflow Task Execution API</title><style>body{font-family:sans-serif;max-width:60em;margin:2em auto}` +
		`td,th{padding:.2em .6em;text-align:left}code{font-size:95%}</style></head><body>` +
		`<h1>Airflow Task Execution API</h1><p>The private Airflow Task Execution API, as taskgate serves it. ` +
		`Clients choose a version with the <code>Airflow-API-Version</code> header; without it they get the newest.</p>`)
	for vi := len(apiVersions) - 1; vi >= 0; vi-- {
		v := apiVersions[vi]
		b.WriteString(`<h2 id="` + v + `">` + v + `</h2><p><a href="openapi.json?version=` + v + `">openapi.json?version=` + v + `</a></p><table><tr><th>Method</th><th>Path</th></tr>`)
		var doc map[string]any
		_ = json.Unmarshal(s.openAPI[v], &doc)
		paths, _ := doc["paths"].(map[string]any)
		keys := make([]string, 0, len(paths))
		for p := range paths {
			keys = append(keys, p)
		}
		sort.Strings(keys)
		for _, p := range keys {
			item, _ := paths[p].(map[string]any)
			methods := make([]string, 0, len(item))
			for m := range item {
				methods = append(methods, m)
			}
			sort.Strings(methods)
			for _, m := range methods {
				b.WriteString("<tr><td>" + strings.ToUpper(m) + "</td><td><code>" + html.EscapeString(p) + "</code></td></tr>")
			}
		}
		b.WriteString("</table>")
	}
	b.WriteString("</body></html>")
	return c.HTML(http.StatusOK, b.String())
}
