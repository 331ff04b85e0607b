// Package tokens mints and verifies the task-scoped JWTs that guard the
// Execution API the way Apache Airflow's API server mints and verifies them,
// so that tokens minted by Airflow are accepted here and tokens minted here
// are accepted by Airflow.
//
// The algorithm is pinned from configuration and never read from a token's
// header: with a pinned algorithm there is no "alg: none" token and no key
// confusion (an HS512 token "signed" with an RSA public key). Only "kid" is
// read from the header; "jku", "x5u" and "jwk" are ignored, so a token can
// never make the gateway fetch or trust a key of the token's choosing.
//
// Every validation failure wraps [ErrInvalid]. The message carries the
// precise reason (expired, bad signature, …) for the log; the HTTP layer must
// answer with one fixed text so the reason is never leaked to the caller.
package tokens

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
)

// ErrInvalid is wrapped by every error Validate returns. Callers test for it
// with errors.Is and map it to the one "Invalid auth token" answer; the rest
// of the message is for logs only.
var ErrInvalid = errors.New("tokens: invalid token")

// invalidError is a validation failure with its reason. It is a distinct
// type (instead of fmt.Errorf) so tests can compare reasons exactly and so
// the failure path allocates one small value.
type invalidError struct {
	reason string
	cause  error // optional, e.g. the context error while waiting for a JWKS fetch
}

func invalid(reason string) *invalidError { return &invalidError{reason: reason} }

func (e *invalidError) Error() string {
	if e.cause != nil {
		return ErrInvalid.Error() + ": " + e.reason + ": " + e.cause.Error()
	}
	return ErrInvalid.Error() + ": " + e.reason
}

// Is makes errors.Is(err, ErrInvalid) true without a wrapping chain.
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func (e *invalidError) Unwrap() error { return e.cause }

// Fingerprint returns the first 16 hex characters of the SHA-256 of raw.
// Logs carry this instead of the token: a token is a bearer credential, so
// anyone who can read the log could replay it, while the fingerprint still
// lets an operator correlate log lines about the same token.
func Fingerprint(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:8])
}
