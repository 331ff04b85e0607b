package auth

import (
	"crypto/sha256"
	"encoding/hex"
)

// Fingerprint returns the first 16 hex characters of the SHA-256 of s, the
// same form as tokens.Fingerprint. Logs carry it instead of a value that may
// be a secret: the user name of a failed login is sometimes the password,
// typed into the wrong field. The fingerprint still lets an operator see
// that failures repeat for one name, and check a name they suspect.
func Fingerprint(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}
