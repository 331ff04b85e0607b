package tokens

import (
	"errors"
	"strings"
)

// Outcome is what Validate made of a token, for metrics. Its values are
// indexes, in order, of the outcome names metrics exports.
type Outcome uint8

const (
	// OutcomeValid: verified in full (and remembered in the cache).
	OutcomeValid Outcome = iota
	// OutcomeCacheHit: verified before, answered from the cache.
	OutcomeCacheHit
	// OutcomeExpired: a good signature, past exp (or before nbf or iat).
	OutcomeExpired
	// OutcomeBadSignature: the signature does not verify, or the algorithm
	// is not the configured one.
	OutcomeBadSignature
	// OutcomeWrongAudience: aud names none of the configured audiences.
	OutcomeWrongAudience
	// OutcomeMalformed: not a JWT of the accepted shape.
	OutcomeMalformed
	// OutcomeInvalid: any other failure (issuer, claim types, unknown kid).
	OutcomeInvalid
)

// Observer is told the outcome of each Validate call. It is called on the
// request's path: it must be cheap and safe for concurrent use.
type Observer interface {
	ObserveToken(Outcome)
}

// outcomeOf classifies a validation failure by its reason. When several
// reasons apply the most telling wins: a bad signature before a bad claim.
func outcomeOf(err error) Outcome {
	var ie *invalidError
	if !errors.As(err, &ie) {
		return OutcomeInvalid
	}
	r := ie.reason
	switch {
	case r == "bad signature" || strings.HasPrefix(r, "alg not allowed"):
		return OutcomeBadSignature
	case strings.HasPrefix(r, "malformed"):
		return OutcomeMalformed
	case strings.Contains(r, "expired") || strings.Contains(r, "in the future"):
		return OutcomeExpired
	case strings.Contains(r, "bad aud"):
		return OutcomeWrongAudience
	}
	return OutcomeInvalid
}

// outcomeNames are the outcomes' names, as metrics labels them.
var outcomeNames = [...]string{"valid", "cache_hit", "expired", "bad_signature", "wrong_audience", "malformed", "invalid"}

// Outcomes is the number of outcomes.
const Outcomes = len(outcomeNames)

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}
