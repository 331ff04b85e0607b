package pyjson

import "testing"

func TestRepr(t *testing.T) {
	for in, want := range map[string]string{
		"":       "''",
		"a":      `'a'`,
		"a'b":    `"a'b"`,
		`a'b"c`:  `'a\'b"c'`,
		`'"`:     `'\'"'`,
		"tab\t":  `'tab\t'`,
		"\x01":   `'\x01'`,
		`back\`:  `'back\\'`,
		"é":      "'é'",
		"\u200b": `'\u200b'`,
	} {
		if got := Repr(in); got != want {
			t.Errorf("Repr(%q) = %s, want %s", in, got, want)
		}
	}
}
