package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// FieldError is one entry of a FastAPI 422 body:
// {"detail": [{"type", "loc", "msg", "input"}, …]}.
type FieldError struct {
	Type  string         `json:"type"`
	Loc   []any          `json:"loc"`
	Msg   string         `json:"msg"`
	Input any            `json:"input"`
	Ctx   map[string]any `json:"ctx,omitempty"`
}

// ValidationError is a request that does not fit its model: HTTP 422 in
// FastAPI's list form, which Airflow clients print as it is.
type ValidationError struct{ Errors []FieldError }

func (e *ValidationError) Error() string {
	if len(e.Errors) == 0 {
		return "gateway: invalid request"
	}
	return fmt.Sprintf("gateway: invalid request: %v %s", e.Errors[0].Loc, e.Errors[0].Msg)
}

// maxJSONDepth bounds nesting in request bodies: encoding/json recurses per
// level, and no Airflow payload nests deeper than a few levels.
const maxJSONDepth = 64

// jsonDepthOK reports whether b nests arrays and objects at most
// maxJSONDepth deep. It only counts brackets outside strings.
func jsonDepthOK(b []byte) bool {
	depth, inStr, esc := 0, false, false
	for _, c := range b {
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '[' || c == '{':
			depth++
			if depth > maxJSONDepth {
				return false
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return true
}

// parseJSON decodes an arbitrary JSON body, as FastAPI does for a body
// parameter typed JsonValue. It is the one JSON entry point of every body
// (decodeObject goes through it); body is UTF-8 already (readBody).
//
// A string whose \u escapes leave a UTF-16 surrogate half without its
// partner ("\ud800") names no character: Go decodes it as U+FFFD, so it
// would be stored as something other than what was sent. It is refused as
// pydantic refuses a str it cannot read as Unicode (string_unicode), naming
// the first such string, before the body's fields are looked at.
func parseJSON(body []byte) (json.RawMessage, *ValidationError) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, &ValidationError{[]FieldError{{Type: "missing", Loc: []any{"body"}, Msg: "Field required", Input: nil}}}
	}
	if !jsonDepthOK(trimmed) || !json.Valid(trimmed) {
		return nil, jsonInvalid()
	}
	if loc, str, ok := loneSurrogate(trimmed); ok {
		return nil, &ValidationError{[]FieldError{{Type: "string_unicode", Loc: loc,
			Msg: "Input should be a valid string, unable to parse raw data as a unicode string", Input: str}}}
	}
	return json.RawMessage(trimmed), nil
}

// loneSurrogate finds the first string of the valid JSON b (a member name
// or a value) holding an unpaired surrogate escape. It returns the string's
// loc below "body" (member names decoded, list positions as numbers; the
// offending member name as sent) and the string as sent, which the 422
// echoes verbatim: re-encoding it would turn the surrogate into U+FFFD.
func loneSurrogate(b []byte) (loc []any, str json.RawMessage, found bool) {
	if !bytes.Contains(b, []byte(`\u`)) {
		return nil, nil, false // the common case: no \u escape at all
	}
	type level struct {
		object bool
		index  int    // a list's current position
		name   []byte // an object's current member name, as sent
		atName bool   // an object's next string is a member name
	}
	var path []level
	for i := 0; i < len(b); {
		switch b[i] {
		case '{':
			path = append(path, level{object: true, atName: true})
		case '[':
			path = append(path, level{})
		case '}', ']':
			path = path[:len(path)-1]
		case ',': // in valid JSON, outside strings only between members or items
			if top := &path[len(path)-1]; top.object {
				top.atName = true
			} else {
				top.index++
			}
		case ':':
			path[len(path)-1].atName = false
		case '"':
			end, lone := scanEscapes(b, i)
			atName := len(path) > 0 && path[len(path)-1].object && path[len(path)-1].atName
			if atName {
				path[len(path)-1].name = b[i:end]
			}
			if lone {
				loc = []any{"body"}
				for k, l := range path {
					switch {
					case !l.object:
						loc = append(loc, l.index)
					case atName && k == len(path)-1:
						loc = append(loc, json.RawMessage(l.name))
					default:
						var name string
						_ = json.Unmarshal(l.name, &name)
						loc = append(loc, name)
					}
				}
				return loc, json.RawMessage(b[i:end]), true
			}
			i = end
			continue
		}
		i++
	}
	return nil, nil, false
}

// scanEscapes reads the JSON string starting at b[i] (its opening quote)
// and returns the index just past its closing quote and whether a \u escape
// in it is a surrogate half without its partner. b is valid JSON.
func scanEscapes(b []byte, i int) (end int, lone bool) {
	j := i + 1
	for b[j] != '"' {
		if b[j] != '\\' {
			j++
			continue
		}
		if b[j+1] != 'u' {
			j += 2
			continue
		}
		r := hex4(b[j+2 : j+6])
		j += 6
		switch {
		case !utf16.IsSurrogate(r):
		case r < 0xdc00 && j+6 <= len(b) && b[j] == '\\' && b[j+1] == 'u' && isLowSurrogate(hex4(b[j+2:j+6])):
			j += 6 // a high surrogate and its low partner: one character
		default:
			lone = true
		}
	}
	return j + 1, lone
}

func isLowSurrogate(r rune) bool { return r >= 0xdc00 && r <= 0xdfff }

// hex4 reads the four hex digits of a \u escape of valid JSON.
func hex4(h []byte) rune {
	var r rune
	for _, c := range h[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

func jsonInvalid() *ValidationError {
	return &ValidationError{[]FieldError{{
		Type: "json_invalid", Loc: []any{"body", 0}, Msg: "JSON decode error", Input: map[string]any{},
		Ctx: map[string]any{"error": "Expecting value"},
	}}}
}

// isJSONInvalid reports whether e is jsonInvalid's answer: a body that is
// not JSON, which FastAPI refuses before validating any parameter.
func (e *ValidationError) isJSONInvalid() bool {
	return len(e.Errors) == 1 && e.Errors[0].Type == "json_invalid" && len(e.Errors[0].Loc) == 2 &&
		e.Errors[0].Loc[0] == "body" && e.Errors[0].Loc[1] == 0
}

// object validates a JSON object field by field, collecting every error the
// way pydantic does instead of stopping at the first.
type object struct {
	fields map[string]json.RawMessage
	input  any
	loc    []any
	errs   []FieldError
	used   map[string]bool
}

// decodeObject parses body as a JSON object for field-by-field validation.
func decodeObject(body []byte) (*object, *ValidationError) {
	raw, verr := parseJSON(body)
	if verr != nil {
		return nil, verr
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		var input any
		_ = json.Unmarshal(raw, &input)
		return nil, &ValidationError{[]FieldError{{
			Type: "model_attributes_type", Loc: []any{"body"},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: input,
		}}}
	}
	o := &object{fields: fields, loc: []any{"body"}, used: map[string]bool{}}
	return o, nil
}

func (o *object) inputValue() any {
	if o.input == nil {
		m := make(map[string]any, len(o.fields))
		for k, v := range o.fields {
			var x any
			_ = json.Unmarshal(v, &x)
			m[k] = x
		}
		o.input = m
	}
	return o.input
}

func (o *object) fail(name, typ, msg string, input any) {
	loc := append(append([]any(nil), o.loc...), name)
	o.errs = append(o.errs, FieldError{Type: typ, Loc: loc, Msg: msg, Input: input})
}

// get returns the field's raw value; present is false when it is absent.
// A required absent field is recorded as missing.
func (o *object) get(name string, required bool) (json.RawMessage, bool) {
	o.used[name] = true
	v, ok := o.fields[name]
	if !ok {
		if required {
			o.fail(name, "missing", "Field required", o.inputValue())
		}
		return nil, false
	}
	return v, true
}

// has reports whether the body holds the field, without reading it.
func (o *object) has(name string) bool {
	_, ok := o.fields[name]
	return ok
}

func isNull(v json.RawMessage) bool { return string(v) == "null" }

func rawInput(v json.RawMessage) any {
	var x any
	_ = json.Unmarshal(v, &x)
	return x
}

// str reads a string field. nullable allows JSON null (returned as nil).
func (o *object) str(name string, required, nullable bool) *string {
	v, ok := o.get(name, required)
	if !ok || (nullable && isNull(v)) {
		return nil
	}
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		o.fail(name, "string_type", "Input should be a valid string", rawInput(v))
		return nil
	}
	return &s
}

// literal reads a string field that must equal one of allowed.
func (o *object) literal(name string, allowed ...string) string {
	s := o.str(name, true, false)
	if s == nil {
		return ""
	}
	for _, a := range allowed {
		if *s == a {
			return *s
		}
	}
	o.literalFail(name, allowed, *s)
	return ""
}

// literalFail records a value outside a literal's allowed set.
func (o *object) literalFail(name string, allowed []string, got string) {
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = "'" + a + "'"
	}
	o.fail(name, "literal_error", "Input should be "+strings.Join(quoted, ", "), got)
}

// integer reads an integer field.
func (o *object) integer(name string, required, nullable bool) *int {
	v, ok := o.get(name, required)
	if !ok || (nullable && isNull(v)) {
		return nil
	}
	n, ok := parseInt(v)
	if !ok {
		o.fail(name, "int_type", "Input should be a valid integer", rawInput(v))
		return nil
	}
	return &n
}

func parseInt(v json.RawMessage) (int, bool) {
	var f json.Number
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) || json.Unmarshal(v, &f) != nil {
		return 0, false
	}
	if n, err := strconv.ParseInt(f.String(), 10, 64); err == nil {
		return int(n), true
	}
	x, err := f.Float64()
	if err != nil || x != math.Trunc(x) || math.Abs(x) > 1<<53 {
		return 0, false
	}
	return int(x), true
}

// number reads a float field.
func (o *object) number(name string, nullable bool) *float64 {
	v, ok := o.get(name, false)
	if !ok || (nullable && isNull(v)) {
		return nil
	}
	var f float64
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) || json.Unmarshal(v, &f) != nil {
		o.fail(name, "float_type", "Input should be a valid number", rawInput(v))
		return nil
	}
	return &f
}

// datetime reads a timestamp field: RFC 3339 (a value without a zone is UTC,
// as Airflow's UtcDateTime treats it) or Unix seconds.
func (o *object) datetime(name string, required, nullable bool) *time.Time {
	v, ok := o.get(name, required)
	if !ok || (nullable && isNull(v)) {
		return nil
	}
	t, ok := parseDatetime(v)
	if !ok {
		o.fail(name, "datetime_parsing", "Input should be a valid datetime", rawInput(v))
		return nil
	}
	return &t
}

func parseDatetime(v json.RawMessage) (time.Time, bool) {
	t, ok := parseAnyDatetime(v)
	// Python's datetime holds years 1 to 9999 only; anything else is no
	// datetime an Airflow client could send or read back.
	if !ok || t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}, false
	}
	return t, true
}

func parseAnyDatetime(v json.RawMessage) (time.Time, bool) {
	var s string
	if json.Unmarshal(v, &s) != nil {
		var f float64
		if json.Unmarshal(v, &f) != nil || math.IsInf(f, 0) || math.Abs(f) > 1e11 {
			return time.Time{}, false
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// duration reads a timedelta field: seconds as a number, or ISO 8601
// ("PT30S", "P1DT2H"), as pydantic accepts it.
func (o *object) duration(name string) *time.Duration {
	v, ok := o.get(name, false)
	if !ok || isNull(v) {
		return nil
	}
	d, ok := parseDuration(v)
	if !ok {
		o.fail(name, "time_delta_parsing", "Input should be a valid timedelta", rawInput(v))
		return nil
	}
	return &d
}

var isoDuration = regexp.MustCompile(`^(-)?P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

func parseDuration(v json.RawMessage) (time.Duration, bool) {
	var f float64
	if json.Unmarshal(v, &f) == nil {
		if math.IsNaN(f) || math.Abs(f) > 1e9 {
			return 0, false
		}
		return time.Duration(f * float64(time.Second)), true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return 0, false
	}
	m := isoDuration.FindStringSubmatch(s)
	if m == nil || s == "P" || strings.HasSuffix(s, "T") {
		return 0, false
	}
	units := []float64{7 * 86400, 86400, 3600, 60, 1}
	var total float64
	for i, u := range units {
		if m[i+2] != "" {
			x, _ := strconv.ParseFloat(m[i+2], 64)
			total += x * u
		}
	}
	if total > 1e9 {
		return 0, false
	}
	if m[1] == "-" {
		total = -total
	}
	return time.Duration(total * float64(time.Second)), true
}

// rawField reads a field of any JSON type. kinds limits the accepted JSON
// kinds ('{' object, '[' array, '"' string); empty accepts any.
func (o *object) rawField(name string, required bool, kinds string) json.RawMessage {
	v, ok := o.get(name, required)
	if !ok {
		return nil
	}
	if kinds != "" && (len(v) == 0 || !strings.ContainsRune(kinds, rune(v[0]))) {
		typ, msg := "dict_type", "Input should be a valid dictionary"
		if kinds == "[" {
			typ, msg = "list_type", "Input should be a valid list"
		}
		o.fail(name, typ, msg, rawInput(v))
		return nil
	}
	return v
}

// forbidExtra records every field the model does not define, as pydantic's
// extra="forbid" does.
func (o *object) forbidExtra() {
	for k, v := range o.fields {
		if !o.used[k] {
			o.fail(k, "extra_forbidden", "Extra inputs are not permitted", rawInput(v))
		}
	}
}

// err returns the collected errors, or nil.
func (o *object) err() *ValidationError {
	if len(o.errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: o.errs}
}

// queryError is a 422 for one query or path parameter.
func paramError(where, name, typ, msg string, input any) *ValidationError {
	return &ValidationError{[]FieldError{{Type: typ, Loc: []any{where, name}, Msg: msg, Input: input}}}
}
