package pgstore

// The partition mappers of Airflow 3.2 (airflow-core/src/airflow/
// partition_mappers/), read from a partitioned DAG's serialized timetable
// (PartitionedAssetTimetable in serialized_dag.data) as Airflow's
// decode_partition_mapper reads them: {"__type": <class path>, "__var":
// <the mapper's serialize()>}. A mapper maps the partition key of an
// upstream asset event to the partition key of the downstream DAG's run
// (to_downstream).

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // the temporal mappers' IANA time zones, wherever taskgate runs

	"github.com/taskgate/taskgate/internal/pyjson"
)

// partitionMapper is a PartitionMapper's to_downstream: the downstream keys
// of an upstream key (one for every mapper of Airflow 3.2), or the error
// Airflow raises for a key the mapper does not accept.
type partitionMapper interface {
	toDownstream(key string) ([]string, error)
}

// The class paths Airflow 3.2 serializes its mappers under
// (encoders.BUILTIN_PARTITION_MAPPERS and the core classes' qualname).
const (
	mapperPath         = "airflow.partition_mappers."
	identityMapperPath = mapperPath + "identity.IdentityMapper"
	productMapperPath  = mapperPath + "product.ProductMapper"
	chainMapperPath    = mapperPath + "chain.ChainMapper"
	allowedKeyPath     = mapperPath + "allowed_key.AllowedKeyMapper"
	temporalPath       = mapperPath + "temporal."
)

// temporalMappers are the _BaseTemporalMapper subclasses by class name, each
// with its normalize (the start of the period holding a datetime).
var temporalMappers = map[string]func(time.Time) time.Time{
	"StartOfHourMapper": func(t time.Time) time.Time {
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, t.Location())
	},
	"StartOfDayMapper": func(t time.Time) time.Time {
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
	},
	"StartOfWeekMapper": func(t time.Time) time.Time { // Monday (Python's weekday() 0)
		back := (int(t.Weekday()) + 6) % 7
		return time.Date(t.Year(), t.Month(), t.Day()-back, 0, 0, 0, 0, t.Location())
	},
	"StartOfMonthMapper": func(t time.Time) time.Time {
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, t.Location())
	},
	"StartOfQuarterMapper": func(t time.Time) time.Time {
		return time.Date(t.Year(), time.Month((int(t.Month())-1)/3*3+1), 1, 0, 0, 0, 0, t.Location())
	},
	"StartOfYearMapper": func(t time.Time) time.Time {
		return time.Date(t.Year(), time.January, 1, 0, 0, 0, 0, t.Location())
	},
}

// unknownMapperError is a mapper class taskgate does not implement (a
// user's own, registered through a plugin).
type unknownMapperError struct{ class string }

func (e *unknownMapperError) Error() string {
	return fmt.Sprintf("pgstore: partition mapper %s is not one of Airflow's", e.class)
}

// keyError is Python's KeyError: str.format met a field it was not given.
type keyError struct{ key string }

func (e *keyError) Error() string { return "KeyError: " + pyjson.Repr(e.key) }

// pyException is the last line of Python's report of the exception a
// mapper raises for a key it refuses (`{type(err).__name__}: {err}`):
// a KeyError for a format field StartOfQuarterMapper does not fill, a
// ValueError for every other refusal.
func pyException(err error) string {
	if k, ok := errors.AsType[*keyError](err); ok {
		return "KeyError: " + pyjson.Repr(k.key)
	}
	return "ValueError: " + err.Error()
}

// encodedMapper is a mapper as encode_partition_mapper writes it.
type encodedMapper struct {
	Type string          `json:"__type"`
	Var  json.RawMessage `json:"__var"`
}

// decodeMapper is Airflow's decode_partition_mapper for the mappers Airflow
// 3.2 ships.
func decodeMapper(raw json.RawMessage) (partitionMapper, error) {
	var e encodedMapper
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("pgstore: partition mapper: %w", err)
	}
	if e.Type == "" {
		return nil, errors.New("pgstore: partition mapper without __type")
	}
	v := e.Var
	if len(v) == 0 || string(v) == "null" {
		v = json.RawMessage(`{}`)
	}
	switch {
	case e.Type == identityMapperPath:
		return identityMapper{}, nil
	case e.Type == allowedKeyPath:
		var d struct {
			AllowedKeys []string `json:"allowed_keys"`
		}
		if err := json.Unmarshal(v, &d); err != nil {
			return nil, fmt.Errorf("pgstore: AllowedKeyMapper: %w", err)
		}
		return allowedKeyMapper{keys: d.AllowedKeys}, nil
	case e.Type == productMapperPath, e.Type == chainMapperPath:
		var d struct {
			Mappers   []json.RawMessage `json:"mappers"`
			Delimiter *string           `json:"delimiter"`
		}
		if err := json.Unmarshal(v, &d); err != nil {
			return nil, fmt.Errorf("pgstore: %s: %w", e.Type, err)
		}
		mappers := make([]partitionMapper, len(d.Mappers))
		for i, m := range d.Mappers {
			var err error
			if mappers[i], err = decodeMapper(m); err != nil {
				return nil, err
			}
		}
		if e.Type == chainMapperPath {
			return chainMapper{mappers: mappers}, nil
		}
		delim := "|"
		if d.Delimiter != nil {
			delim = *d.Delimiter
		}
		return productMapper{mappers: mappers, delimiter: delim}, nil
	case strings.HasPrefix(e.Type, temporalPath) && temporalMappers[strings.TrimPrefix(e.Type, temporalPath)] != nil:
		return decodeTemporal(strings.TrimPrefix(e.Type, temporalPath), v)
	}
	return nil, &unknownMapperError{class: e.Type}
}

// identityMapper is IdentityMapper: the key itself.
type identityMapper struct{}

func (identityMapper) toDownstream(key string) ([]string, error) { return []string{key}, nil }

// allowedKeyMapper is AllowedKeyMapper: the key itself when it is one of
// the allowed keys, else a ValueError.
type allowedKeyMapper struct{ keys []string }

func (m allowedKeyMapper) toDownstream(key string) ([]string, error) {
	for _, k := range m.keys {
		if k == key {
			return []string{key}, nil
		}
	}
	return nil, fmt.Errorf("Key %s not in allowed keys %s", pyjson.Repr(key), pyReprList(m.keys))
}

// productMapper is ProductMapper: the key split on the delimiter, each
// segment through its own mapper (which must give one key), joined again.
type productMapper struct {
	mappers   []partitionMapper
	delimiter string
}

func (m productMapper) toDownstream(key string) ([]string, error) {
	if m.delimiter == "" {
		return nil, errors.New("empty separator") // str.split("")
	}
	segments := strings.Split(key, m.delimiter)
	if len(segments) != len(m.mappers) {
		return nil, fmt.Errorf("Expected %d segments in key, got %d", len(m.mappers), len(segments))
	}
	out := make([]string, len(segments))
	for i, seg := range segments {
		keys, err := m.mappers[i].toDownstream(seg)
		if err != nil {
			return nil, err
		}
		if len(keys) != 1 {
			return nil, errors.New("ProductMapper child mappers must return a single key")
		}
		out[i] = keys[0]
	}
	return []string{strings.Join(out, m.delimiter)}, nil
}

// chainMapper is ChainMapper: the mappers applied in turn, each to every
// key the previous one gave.
type chainMapper struct{ mappers []partitionMapper }

func (m chainMapper) toDownstream(key string) ([]string, error) {
	keys := []string{key}
	for _, mapper := range m.mappers {
		var next []string
		for _, k := range keys {
			out, err := mapper.toDownstream(k)
			if err != nil {
				return nil, err
			}
			next = append(next, out...)
		}
		keys = next
	}
	return keys, nil
}

// temporalMapper is a _BaseTemporalMapper: the key parsed with
// input_format (strptime), made aware in the mapper's time zone (or moved
// into it when the key carries an offset), normalized to the start of its
// period and formatted with output_format (strftime; StartOfQuarterMapper
// then fills {quarter} through str.format).
type temporalMapper struct {
	class                     string
	loc                       *time.Location
	inputFormat, outputFormat string
	normalize                 func(time.Time) time.Time
}

func decodeTemporal(class string, v json.RawMessage) (partitionMapper, error) {
	var d struct {
		Timezone     json.RawMessage `json:"timezone"`
		InputFormat  *string         `json:"input_format"`
		OutputFormat *string         `json:"output_format"`
	}
	if err := json.Unmarshal(v, &d); err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", class, err)
	}
	if d.InputFormat == nil || d.OutputFormat == nil {
		return nil, fmt.Errorf("pgstore: %s without input_format or output_format", class)
	}
	loc, err := decodeTimezone(d.Timezone)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", class, err)
	}
	return temporalMapper{class: class, loc: loc, inputFormat: *d.InputFormat, outputFormat: *d.OutputFormat,
		normalize: temporalMappers[class]}, nil
}

// decodeTimezone is parse_timezone of what encode_timezone wrote: an IANA
// name, "UTC", or a fixed offset in seconds; UTC when absent (the SDK of
// Airflow 3.2 leaves it out).
func decodeTimezone(raw json.RawMessage) (*time.Location, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.UTC, nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err == nil {
		if name == "UTC" {
			return time.UTC, nil
		}
		return time.LoadLocation(name)
	}
	var offset float64
	if err := json.Unmarshal(raw, &offset); err != nil {
		return nil, fmt.Errorf("timezone %s", raw)
	}
	return time.FixedZone(formatOffset(int(offset), true), int(offset)), nil
}

func (m temporalMapper) toDownstream(key string) ([]string, error) {
	t, aware, err := strptime(key, m.inputFormat)
	if err != nil {
		return nil, err
	}
	if aware {
		t = t.In(m.loc)
	} else {
		t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), m.loc)
	}
	t = m.normalize(t)
	out, err := strftime(t, m.outputFormat)
	if err != nil {
		return nil, err
	}
	if m.class == "StartOfQuarterMapper" {
		if out, err = formatQuarter(out, (int(t.Month())-1)/3+1); err != nil {
			return nil, err
		}
	}
	return []string{out}, nil
}

// strptimeDirectives are the patterns of Python's _strptime.TimeRE for the
// directives a partition key's format uses.
var strptimeDirectives = map[byte]string{
	'd': `3[01]|[12]\d|0[1-9]|[1-9]| [1-9]`,
	'f': `[0-9]{1,6}`,
	'H': `2[0-3]|[0-1]\d|\d`,
	'j': `36[0-6]|3[0-5]\d|[12]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9]`,
	'm': `1[0-2]|0[1-9]|[1-9]`,
	'M': `[0-5]\d|\d`,
	'S': `6[0-1]|[0-5]\d|\d`,
	'y': `\d\d`,
	'Y': `\d\d\d\d`,
	'z': `[+-]\d\d:?[0-5]\d(?::?[0-5]\d(?:\.\d{1,6})?)?|(?-i:Z)`,
}

// strptime is Python's datetime.strptime for the directives above: the
// whole string must match the format (case-insensitively, whitespace in
// the format matching any run of whitespace); fields left out default to
// 1900-01-01 00:00:00. aware reports a %z offset, which t then carries.
func strptime(s, format string) (t time.Time, aware bool, err error) {
	var re strings.Builder
	re.WriteString(`(?i)^`)
	var order []byte
	for i := 0; i < len(format); i++ {
		c := format[i]
		switch {
		case c == '%' && i+1 < len(format):
			i++
			d := format[i]
			if d == '%' {
				re.WriteString(`%`)
				continue
			}
			pat, ok := strptimeDirectives[d]
			if !ok {
				return time.Time{}, false, fmt.Errorf("pgstore: strptime directive %%%c is not supported", d)
			}
			for _, o := range order {
				if o == d {
					return time.Time{}, false, fmt.Errorf("redefinition of group name %q", string(d))
				}
			}
			order = append(order, d)
			re.WriteString(`(` + pat + `)`)
		case c == '%':
			return time.Time{}, false, fmt.Errorf("stray %% in format '%s'", format)
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			for i+1 < len(format) && strings.ContainsRune(" \t\n\r\f\v", rune(format[i+1])) {
				i++
			}
			re.WriteString(`\s+`)
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	rx, err := regexp.Compile(re.String())
	if err != nil {
		return time.Time{}, false, err
	}
	loc := rx.FindStringSubmatchIndex(s)
	if loc == nil {
		return time.Time{}, false, fmt.Errorf("time data %s does not match format %s", pyjson.Repr(s), pyjson.Repr(format))
	}
	if loc[1] != len(s) {
		return time.Time{}, false, fmt.Errorf("unconverted data remains: %s", s[loc[1]:])
	}
	year, month, day, hour, minute, second, nsec := 1900, 1, 1, 0, 0, 0, 0
	yday := -1
	var zone *time.Location
	for gi, d := range order {
		v := strings.TrimSpace(s[loc[2+2*gi]:loc[3+2*gi]])
		n, _ := strconv.Atoi(v)
		switch d {
		case 'Y':
			year = n
		case 'y':
			if n < 69 {
				year = 2000 + n
			} else {
				year = 1900 + n
			}
		case 'm':
			month = n
		case 'd':
			day = n
		case 'H':
			hour = n
		case 'M':
			minute = n
		case 'S':
			second = n
		case 'f':
			frac, _ := strconv.Atoi((v + "000000")[:6])
			nsec = frac * 1000
		case 'j':
			yday = n
		case 'z':
			if zone, err = parseOffset(v); err != nil {
				return time.Time{}, false, err
			}
		}
	}
	if second == 60 || second == 61 {
		second = 59 // Python clamps leap seconds
	}
	l := time.UTC
	if zone != nil {
		l = zone
	}
	if yday >= 0 && !hasDirective(order, 'm') && !hasDirective(order, 'd') {
		t = time.Date(year, time.January, yday, hour, minute, second, nsec, l)
		return t, zone != nil, nil
	}
	t = time.Date(year, time.Month(month), day, hour, minute, second, nsec, l)
	if t.Day() != day || int(t.Month()) != month {
		return time.Time{}, false, errors.New("day is out of range for month")
	}
	return t, zone != nil, nil
}

func hasDirective(order []byte, d byte) bool {
	for _, o := range order {
		if o == d {
			return true
		}
	}
	return false
}

// parseOffset reads a %z value: Z, ±HHMM, ±HH:MM, with optional seconds.
func parseOffset(v string) (*time.Location, error) {
	if v == "Z" {
		return time.UTC, nil
	}
	sign := 1
	if v[0] == '-' {
		sign = -1
	}
	digits := strings.ReplaceAll(v[1:], ":", "")
	if i := strings.IndexByte(digits, '.'); i >= 0 {
		digits = digits[:i] // microseconds of an offset: dropped
	}
	h, _ := strconv.Atoi(digits[0:2])
	m, _ := strconv.Atoi(digits[2:4])
	sec := 0
	if len(digits) >= 6 {
		sec, _ = strconv.Atoi(digits[4:6])
	}
	off := sign * (h*3600 + m*60 + sec)
	if off == 0 {
		return time.FixedZone("UTC", 0), nil
	}
	return time.FixedZone("UTC"+formatOffset(off, true), off), nil
}

// formatOffset is an offset in seconds as ±HHMM (strftime's %z) or
// ±HH:MM.
func formatOffset(off int, colon bool) string {
	sign := '+'
	if off < 0 {
		sign, off = '-', -off
	}
	sep := ""
	if colon {
		sep = ":"
	}
	s := fmt.Sprintf("%c%02d%s%02d", sign, off/3600, sep, off/60%60)
	if off%60 != 0 {
		s += fmt.Sprintf("%s%02d", sep, off%60)
	}
	return s
}

var (
	shortDays   = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	shortMonths = []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// strftime is Python's datetime.strftime (C locale) for the directives a
// partition key's format uses.
func strftime(t time.Time, format string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b.WriteByte(c)
			continue
		}
		i++
		switch d := format[i]; d {
		case '%':
			b.WriteByte('%')
		case 'Y':
			fmt.Fprintf(&b, "%d", t.Year())
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'I':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			fmt.Fprintf(&b, "%02d", h)
		case 'p':
			if t.Hour() < 12 {
				b.WriteString("AM")
			} else {
				b.WriteString("PM")
			}
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'f':
			fmt.Fprintf(&b, "%06d", t.Nanosecond()/1000)
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case 'V':
			_, w := t.ISOWeek()
			fmt.Fprintf(&b, "%02d", w)
		case 'G':
			y, _ := t.ISOWeek()
			fmt.Fprintf(&b, "%d", y)
		case 'u':
			fmt.Fprintf(&b, "%d", (int(t.Weekday())+6)%7+1)
		case 'w':
			fmt.Fprintf(&b, "%d", int(t.Weekday()))
		case 'U': // weeks starting on Sunday
			fmt.Fprintf(&b, "%02d", (t.YearDay()+6-int(t.Weekday()))/7)
		case 'W': // weeks starting on Monday
			fmt.Fprintf(&b, "%02d", (t.YearDay()+6-(int(t.Weekday())+6)%7)/7)
		case 'a':
			b.WriteString(shortDays[t.Weekday()])
		case 'A':
			b.WriteString(t.Weekday().String())
		case 'b':
			b.WriteString(shortMonths[t.Month()-1])
		case 'B':
			b.WriteString(t.Month().String())
		case 'z':
			_, off := t.Zone()
			b.WriteString(formatOffset(off, false))
		case 'Z':
			name, _ := t.Zone()
			b.WriteString(name)
		default:
			return "", fmt.Errorf("pgstore: strftime directive %%%c is not supported", d)
		}
	}
	return b.String(), nil
}

// formatQuarter is str.format(quarter=q) on StartOfQuarterMapper's
// strftime output: {quarter} replaced, {{ and }} unescaped, any other
// field an error (Python's KeyError).
func formatQuarter(s string, q int) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			b.WriteByte('{')
			i++
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			b.WriteByte('}')
			i++
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", errors.New("Single '{' encountered in format string")
			}
			if field := s[i+1 : i+end]; field != "quarter" {
				return "", &keyError{key: field}
			}
			b.WriteString(strconv.Itoa(q))
			i += end
		case c == '}':
			return "", errors.New("Single '}' encountered in format string")
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func pyReprList(l []string) string {
	parts := make([]string, len(l))
	for i, s := range l {
		parts[i] = pyjson.Repr(s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
