// Package pyjson writes JSON as Python's json.dumps writes it. SQLAlchemy's
// JSON type fills Airflow's plain json columns with json.dumps, so a value
// taskgate writes there must have those bytes for Airflow's rows to read
// as Airflow's own; the test fixtures write Airflow's rows with it too.
// Repr writes a str as Python's repr does, for error details that quote a
// client's text exactly as Airflow's f"{name!r}" does.
package pyjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Dumps re-encodes a JSON value as Python's json.dumps writes it with
// its defaults, which is how SQLAlchemy's JSON type fills Airflow's plain
// json columns (asset_event.extra, asset.extra): ", " and ": " separators,
// non-ASCII and DEL escaped as \uXXXX (ensure_ascii), numbers as Python
// reads and writes them (an integer verbatim, a float by its shortest
// repr: 1e6 → 1000000.0, 1e-5 → 1e-05), keys in their order (a repeated
// key keeps its first place and its last value), or sorted at every level
// when sortKeys (sort_keys=True).
func Dumps(raw []byte, sortKeys bool) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeOrdered(dec)
	if err != nil {
		return "", err
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("pyjson: trailing data after a JSON value")
	}
	var b strings.Builder
	if err := writePython(&b, v, sortKeys); err != nil {
		return "", err
	}
	return b.String(), nil
}

// orderedObject is a JSON object with its keys in order.
type orderedObject struct {
	keys   []string
	values map[string]any
}

func decodeOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := orderedObject{values: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("pyjson: JSON object key %v", kt)
				}
				v, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				if _, seen := o.values[k]; !seen {
					o.keys = append(o.keys, k)
				}
				o.values[k] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return o, nil
		case '[':
			a := []any{}
			for dec.More() {
				v, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return a, nil
		}
		return nil, fmt.Errorf("pyjson: unexpected JSON delimiter %v", t)
	default:
		return tok, nil
	}
}

func writePython(b *strings.Builder, v any, sortKeys bool) error {
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(t))
	case string:
		writePythonString(b, t)
	case json.Number:
		s, err := pythonNumber(string(t))
		if err != nil {
			return err
		}
		b.WriteString(s)
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := writePython(b, e, sortKeys); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case orderedObject:
		keys := t.keys
		if sortKeys {
			keys = append([]string(nil), keys...)
			sort.Strings(keys)
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writePythonString(b, k)
			b.WriteString(": ")
			if err := writePython(b, t.values[k], sortKeys); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("pyjson: unexpected JSON value %T", v)
	}
	return nil
}

// writePythonString is json.dumps's ensure_ascii string encoding.
func writePythonString(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	u := func(r uint16) {
		b.WriteString(`\u`)
		b.WriteByte(hex[r>>12&0xf])
		b.WriteByte(hex[r>>8&0xf])
		b.WriteByte(hex[r>>4&0xf])
		b.WriteByte(hex[r&0xf])
	}
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r >= ' ' && r <= '~':
			b.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			u(uint16(r1))
			u(uint16(r2))
		default:
			u(uint16(r))
		}
	}
	b.WriteByte('"')
}

// pythonNumber is a JSON number as Python's json round trip writes it: an
// integer as Python's int, a float as repr(float).
func pythonNumber(n string) (string, error) {
	if !strings.ContainsAny(n, ".eE") {
		i, ok := new(big.Int).SetString(n, 10)
		if !ok {
			return "", fmt.Errorf("pyjson: JSON number %q", n)
		}
		return i.String(), nil
	}
	f, err := strconv.ParseFloat(n, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			// Python reads an out-of-range float as ±inf and writes it
			// so (or 0.0 for an underflow, which ParseFloat returns as
			// is).
			if f > 0 {
				return "Infinity", nil
			}
			return "-Infinity", nil
		}
		return "", err
	}
	// The shortest digits that read back as f, and Python's repr layout:
	// positional for decimal exponents -4 ≤ e < 16, else d.ddde±XX.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, expStr, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expStr)
	neg := strings.HasPrefix(mant, "-")
	mant = strings.TrimPrefix(mant, "-")
	digits := strings.Replace(mant, ".", "", 1)
	sign := ""
	if neg {
		sign = "-"
	}
	if exp < -4 || exp >= 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		es := "+"
		if exp < 0 {
			es, exp = "-", -exp
		}
		return fmt.Sprintf("%s%se%s%02d", sign, m, es, exp), nil
	}
	var s string
	switch {
	case exp < 0:
		s = "0." + strings.Repeat("0", -exp-1) + digits
	case exp+1 >= len(digits):
		s = digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	default:
		s = digits[:exp+1] + "." + digits[exp+1:]
	}
	return sign + s, nil
}
