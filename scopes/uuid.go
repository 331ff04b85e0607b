package scopes

import "strings"

// CanonicalUUID parses s the way Airflow's models accept a UUID (the dashed
// form, 32 bare hex digits, optionally in braces or behind "urn:uuid:", any
// case) and returns the lowercase dashed form. ok is false when s is not a
// UUID.
func CanonicalUUID(s string) (canonical string, ok bool) {
	if len(s) > 45 {
		return "", false
	}
	s = strings.TrimPrefix(strings.ToLower(s), "urn:uuid:")
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		s = s[1 : len(s)-1]
	}
	var hex [32]byte
	n := 0
	switch len(s) {
	case 32:
		for i := 0; i < 32; i++ {
			if !isHex(s[i]) {
				return "", false
			}
			hex[n] = s[i]
			n++
		}
	case 36:
		for i := 0; i < 36; i++ {
			c := s[i]
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if c != '-' {
					return "", false
				}
				continue
			}
			if !isHex(c) {
				return "", false
			}
			hex[n] = c
			n++
		}
	default:
		return "", false
	}
	var b strings.Builder
	b.Grow(36)
	for i, c := range hex {
		if i == 8 || i == 12 || i == 16 || i == 20 {
			b.WriteByte('-')
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

// IsUUID reports whether s parses as a UUID.
func IsUUID(s string) bool {
	_, ok := CanonicalUUID(s)
	return ok
}

// SameUUID reports whether a and b are both UUIDs naming the same value,
// whatever their spelling.
func SameUUID(a, b string) bool {
	if a == b {
		return IsUUID(a)
	}
	ca, ok := CanonicalUUID(a)
	if !ok {
		return false
	}
	cb, ok := CanonicalUUID(b)
	return ok && ca == cb
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f'
}
