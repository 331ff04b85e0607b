package config

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// defaultSection is ConfigParser's section whose keys are fallbacks for
// every other section.
const defaultSection = "DEFAULT"

// maxInterpolationDepth matches ConfigParser's MAX_INTERPOLATION_DEPTH.
const maxInterpolationDepth = 10

// maxExpandedLen bounds interpolation and environment expansion, which can
// otherwise grow a short file into an arbitrarily large value.
const maxExpandedLen = 1 << 20

// iniEntry is one key of an INI file.
type iniEntry struct {
	value string
	line  int // line of the "key = value" line
}

// iniFile is a parsed INI file. Section names are case-sensitive; keys are
// lower-cased, as ConfigParser's optionxform does.
type iniFile struct {
	name     string
	sections map[string]map[string]iniEntry
	defaults map[string]iniEntry
}

// lookup returns a key of section, falling back to [DEFAULT].
func (f *iniFile) lookup(section, key string) (iniEntry, bool) {
	if e, ok := f.sections[section][key]; ok {
		return e, true
	}
	e, ok := f.defaults[key]
	return e, ok
}

// parseINI parses data the way Python's ConfigParser (strict, with default
// delimiters and comment prefixes) reads airflow.cfg:
//   - "[name]" starts a section; "[DEFAULT]" holds fallbacks for all sections;
//   - "key = value" or "key: value", split at the first = or :; keys are
//     lower-cased, keys and values trimmed;
//   - lines whose first non-blank character is # or ; are comments; there are
//     no inline comments ("a = b # c" has the value "b # c");
//   - a line indented deeper than its key line continues the value, joined
//     with "\n"; blank lines inside a value are kept, trailing ones dropped;
//   - a repeated section or key, a key outside a section and a line that is
//     neither are errors, as they are for Airflow itself.
func parseINI(name string, data []byte) (*iniFile, error) {
	f := &iniFile{
		name:     name,
		sections: map[string]map[string]iniEntry{},
		defaults: map[string]iniEntry{},
	}
	text := strings.TrimPrefix(string(data), "\uFEFF")
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")

	type pending struct {
		sect  map[string]iniEntry
		key   string
		line  int
		parts []string
	}
	var (
		cur       map[string]iniEntry // current section, nil before the first header
		curName   string
		opt       *pending // key whose value may still continue
		indent    int
		seenSect  = map[string]bool{}
		seenKey   = map[[2]string]bool{}
		syntaxErr = func(line int, format string, args ...any) error {
			return &SyntaxError{File: name, Line: line, Msg: fmt.Sprintf(format, args...)}
		}
	)
	flush := func() {
		if opt != nil {
			v := strings.TrimRightFunc(strings.Join(opt.parts, "\n"), unicode.IsSpace)
			opt.sect[opt.key] = iniEntry{value: v, line: opt.line}
			opt = nil
		}
	}

	for i, line := range strings.Split(text, "\n") {
		lineno := i + 1
		stripped := strings.TrimSpace(line)
		comment := strings.HasPrefix(stripped, "#") || strings.HasPrefix(stripped, ";")
		if comment || stripped == "" {
			// A blank line inside a value is part of it; a comment is not.
			if !comment && opt != nil {
				opt.parts = append(opt.parts, "")
			}
			continue
		}
		lineIndent := leadingSpaceRunes(line)
		if opt != nil && lineIndent > indent {
			opt.parts = append(opt.parts, stripped)
			continue
		}
		indent = lineIndent
		if h, ok := sectionHeader(stripped); ok {
			flush()
			switch {
			case h == defaultSection:
				// ConfigParser lets [DEFAULT] be reopened.
				cur = f.defaults
			case seenSect[h]:
				return nil, syntaxErr(lineno, "section [%s] appears more than once", h)
			default:
				seenSect[h] = true
				cur = map[string]iniEntry{}
				f.sections[h] = cur
			}
			curName = h
			continue
		}
		if cur == nil {
			return nil, syntaxErr(lineno, "key outside of a [section]")
		}
		d := strings.IndexAny(stripped, "=:")
		if d < 0 {
			return nil, syntaxErr(lineno, `expected "key = value" or a [section]`)
		}
		key := strings.ToLower(strings.TrimSpace(stripped[:d]))
		if key == "" {
			return nil, syntaxErr(lineno, "empty key")
		}
		if seenKey[[2]string{curName, key}] {
			return nil, syntaxErr(lineno, "key %q appears more than once in [%s]", key, curName)
		}
		seenKey[[2]string{curName, key}] = true
		flush()
		opt = &pending{sect: cur, key: key, line: lineno, parts: []string{strings.TrimSpace(stripped[d+1:])}}
	}
	flush()
	return f, nil
}

// sectionHeader matches ConfigParser's `\[(?P<header>.+)\]` at the start of a
// stripped line: the header runs to the last "]", and anything after it is
// ignored.
func sectionHeader(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") {
		return "", false
	}
	j := strings.LastIndexByte(s, ']')
	if j < 2 || strings.ContainsRune(s[1:j], '\n') {
		return "", false
	}
	return s[1:j], true
}

// leadingSpaceRunes counts the whitespace characters before the first
// non-blank one, as ConfigParser measures indentation.
func leadingSpaceRunes(s string) int {
	n := 0
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if !unicode.IsSpace(r) {
			break
		}
		n++
		s = s[size:]
	}
	return n
}

// interpolate applies ConfigParser's BasicInterpolation to a raw file value:
// "%%" is a literal "%" (airflow.cfg writes log formats that way) and
// "%(name)s" is the value of another key of the same section or [DEFAULT].
func (f *iniFile) interpolate(section, raw string) (string, error) {
	var b strings.Builder
	if err := f.interpolateInto(&b, section, raw, 1); err != nil {
		return "", err
	}
	return b.String(), nil
}

func (f *iniFile) interpolateInto(b *strings.Builder, section, rest string, depth int) error {
	if depth > maxInterpolationDepth {
		return errors.New("interpolation nested too deeply")
	}
	for rest != "" {
		if b.Len() > maxExpandedLen {
			return errors.New("interpolated value too large")
		}
		p := strings.IndexByte(rest, '%')
		if p < 0 {
			b.WriteString(rest)
			return nil
		}
		b.WriteString(rest[:p])
		rest = rest[p:]
		switch {
		case strings.HasPrefix(rest, "%%"):
			b.WriteByte('%')
			rest = rest[2:]
		case strings.HasPrefix(rest, "%("):
			end := strings.IndexByte(rest, ')')
			if end < 3 || !strings.HasPrefix(rest[end:], ")s") {
				return errors.New(`bad interpolation reference (use %(key)s, or %% for a literal %)`)
			}
			ref := strings.ToLower(rest[2:end])
			rest = rest[end+2:]
			e, ok := f.lookup(section, ref)
			if !ok {
				return fmt.Errorf("interpolation refers to missing key %q", ref)
			}
			if !strings.Contains(e.value, "%") {
				b.WriteString(e.value)
				continue
			}
			if err := f.interpolateInto(b, section, e.value, depth+1); err != nil {
				return err
			}
		default:
			return errors.New(`"%" must be followed by "%" or "(" (write %% for a literal %)`)
		}
	}
	return nil
}

// expandEnv does what Airflow's expand_env_var does to every file and
// environment value: apply os.path.expandvars and os.path.expanduser until
// the value stops changing. env replaces the process environment; "~" is
// expanded only from env's HOME, never from the password database.
func expandEnv(v string, env map[string]string) (string, error) {
	for range 100 {
		next := expandUser(expandVars(v, env), env)
		if next == v {
			return v, nil
		}
		if len(next) > maxExpandedLen {
			return "", errors.New("environment variable expansion too large")
		}
		v = next
	}
	return "", errors.New("environment variable expansion does not settle")
}

// expandVars replaces $name and ${name} with variables that are set in env
// and leaves all others untouched, like Python's posixpath.expandvars.
func expandVars(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		rest := s[i+1:]
		var name string
		var n int // bytes of the reference after "$"
		if strings.HasPrefix(rest, "{") {
			if end := strings.IndexByte(rest, '}'); end > 0 {
				name, n = rest[1:end], end+1
			}
		} else {
			for n < len(rest) && isWordByte(rest[n]) {
				n++
			}
			name = rest[:n]
		}
		val, ok := env[name]
		if n == 0 || !ok {
			// Not a reference, or an unset variable: keep it verbatim.
			b.WriteByte('$')
			b.WriteString(rest[:n])
		} else {
			b.WriteString(val)
		}
		s = rest[n:]
	}
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// expandUser replaces a leading "~" or "~/" with env's HOME, like
// posixpath.expanduser; "~user" and an unset HOME leave s unchanged.
func expandUser(s string, env map[string]string) string {
	if !strings.HasPrefix(s, "~") {
		return s
	}
	i := strings.IndexByte(s, '/')
	if i < 0 {
		i = len(s)
	}
	if i != 1 {
		return s
	}
	home, ok := env["HOME"]
	if !ok {
		return s
	}
	out := strings.TrimRight(home, "/") + s[i:]
	if out == "" {
		return "/"
	}
	return out
}
