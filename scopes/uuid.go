package scopes

import "strings"

// parseUUID reads a UUID the way Airflow's models accept one: the dashed
// form or 32 bare hex digits, optionally in braces or behind "urn:uuid:",
// in any case. It does not allocate: it runs on every request (the sub
// check and the ti:self comparison).
func parseUUID(s string) (u [16]byte, ok bool) {
	if len(s) > 45 {
		return u, false
	}
	if len(s) >= 9 && strings.EqualFold(s[:9], "urn:uuid:") {
		s = s[9:]
	}
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	switch len(s) {
	case 32:
	case 36:
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return u, false
		}
	default:
		return u, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if len(s) == 36 && (i == 8 || i == 13 || i == 18 || i == 23) {
			continue
		}
		v, ok := hexVal(s[i])
		if !ok {
			return u, false
		}
		if n%2 == 0 {
			u[n/2] = v << 4
		} else {
			u[n/2] |= v
		}
		n++
	}
	return u, true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// CanonicalUUID parses s as a UUID (see parseUUID for the accepted
// spellings) and returns the lowercase dashed form. ok is false when s is
// not a UUID.
func CanonicalUUID(s string) (canonical string, ok bool) {
	u, ok := parseUUID(s)
	if !ok {
		return "", false
	}
	const digits = "0123456789abcdef"
	var b [36]byte
	j := 0
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = digits[x>>4], digits[x&0x0f]
		j += 2
	}
	if string(b[:]) == s {
		return s, true // already canonical, as every token taskgate mints: no copy
	}
	return string(b[:]), true
}

// IsUUID reports whether s parses as a UUID.
func IsUUID(s string) bool {
	_, ok := parseUUID(s)
	return ok
}

// SameUUID reports whether a and b are both UUIDs naming the same value,
// whatever their spelling.
func SameUUID(a, b string) bool {
	ua, ok := parseUUID(a)
	if !ok {
		return false
	}
	ub, ok := parseUUID(b)
	return ok && ua == ub
}
