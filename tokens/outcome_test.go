package tokens

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// outcomes records what a validator observed.
type outcomes []Outcome

func (o *outcomes) ObserveToken(x Outcome) { *o = append(*o, x) }

// TestValidateObservesOutcomes: every Validate tells the observer what
// became of the token, a failure by its most telling reason.
func TestValidateObservesOutcomes(t *testing.T) {
	secret := randomSecret(t)
	hs := func(key []byte, claims map[string]any) string {
		return craftMap(t, map[string]any{"alg": "HS512", "typ": "JWT"}, claims, jwt.SigningMethodHS512, key)
	}
	std := stdClaims()
	valid := hs(secret, std)
	tests := []struct {
		name  string
		token string
		now   time.Time // zero: t0
		want  Outcome
	}{
		{"valid", valid, time.Time{}, OutcomeValid},
		{"the same again, from the cache", valid, time.Time{}, OutcomeCacheHit},
		{"expired", hs(secret, with(std, "jti", "other")), t0.Add(time.Hour), OutcomeExpired},
		{"signed with another key", hs(randomSecret(t), std), time.Time{}, OutcomeBadSignature},
		{"expired and signed with another key", hs(randomSecret(t), std), t0.Add(time.Hour), OutcomeBadSignature},
		{"another audience", hs(secret, with(std, "aud", "urn:someone-else")), time.Time{}, OutcomeWrongAudience},
		{"not a JWT", "not.a-jwt", time.Time{}, OutcomeMalformed},
		{"bad characters", "a b.c.d", time.Time{}, OutcomeMalformed},
		{"a claim of the wrong type", hs(secret, with(std, "jti", 5)), time.Time{}, OutcomeInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			if !tc.now.IsZero() {
				now = tc.now
			}
			var got outcomes
			v, err := NewValidator(Config{Secret: secret, Audiences: []string{testAudience}, Leeway: 10 * time.Second,
				Now: func() time.Time { return now }, Observer: &got})
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == OutcomeCacheHit {
				if _, err := v.Validate(context.Background(), tc.token); err != nil {
					t.Fatal(err)
				}
				got = got[:0]
			}
			_, _ = v.Validate(context.Background(), tc.token)
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("observed %v, want [%v]", got, tc.want)
			}
		})
	}
}
