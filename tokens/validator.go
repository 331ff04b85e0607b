package tokens

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/taskgate/taskgate/scopes"
)

// Validator verifies task tokens. It is safe for concurrent use; build one
// at start-up and share it.
type Validator struct {
	alg     string
	parser  *jwt.Parser // built once: the algorithm, audience, leeway and clock never come from a token
	issuers []string
	secret  []byte           // HS512 mode
	pub     crypto.PublicKey // private-key mode: the public half
	jwks    *jwks            // trusted_jwks_url mode
	now     func() time.Time
	leeway  time.Duration
	cache   *verifiedCache // nil when disabled
	obs     Observer       // nil: nobody counts outcomes

	// newTicker drives Run; tests replace it to tick by hand.
	newTicker func(time.Duration) (<-chan time.Time, func())
}

// NewValidator builds a Validator. Keys come, in Airflow's priority order,
// from TrustedJWKSURL, else the public half of PrivateKeyPath, else Secret.
//
// With a JWKS URL the first load is attempted here; failing it is not an
// error (a JWKS server that is briefly down must not stop the gateway from
// starting) but Health reports it until a load succeeds.
func NewValidator(cfg Config) (*Validator, error) {
	if err := cfg.checkCommon(); err != nil {
		return nil, err
	}
	v := &Validator{
		issuers:   slices.Clone(cfg.Issuers),
		newTicker: realTicker,
		now:       cfg.now(),
		leeway:    cfg.Leeway,
		obs:       cfg.Observer,
	}
	switch {
	case cfg.CacheSize == 0:
		v.cache = newVerifiedCache(DefaultCacheSize)
	case cfg.CacheSize > 0:
		v.cache = newVerifiedCache(cfg.CacheSize)
	}
	var kind keyKind
	switch {
	case cfg.TrustedJWKSURL != "":
		kind = kindJWKS
	case cfg.PrivateKeyPath != "":
		priv, k, err := loadPrivateKey(cfg.PrivateKeyPath)
		if err != nil {
			return nil, err
		}
		v.pub, kind = priv.Public(), k
	case len(cfg.Secret) > 0:
		v.secret, kind = slices.Clone(cfg.Secret), kindSecret
	default:
		return nil, errors.New("tokens: no verification key: set trusted_jwks_url, jwt_private_key_path or jwt_secret")
	}
	alg, err := resolveAlgorithm(cfg.Algorithm, kind)
	if err != nil {
		return nil, err
	}
	v.alg = alg
	v.parser = jwt.NewParser(
		// The one algorithm from configuration: "none", other algorithms and
		// HS512 "signed" with a public key are refused before any key is used.
		jwt.WithValidMethods([]string{alg}),
		jwt.WithAudience(cfg.Audiences...),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(cfg.now()),
		// Together with the alphabet check in Validate this makes the
		// token text canonical: one signed claim set has exactly one
		// accepted spelling, so a cache keyed by the token string is sound.
		jwt.WithStrictDecoding(),
	)
	if kind == kindJWKS {
		if v.jwks, err = newJWKS(&cfg, alg); err != nil {
			return nil, err
		}
		_ = v.jwks.refreshIfDue(context.Background(), false) // recorded for Health
	}
	return v, nil
}

// Validate verifies raw and returns its claims. Any failure wraps
// ErrInvalid and names the reason. It does not check the scope or that sub
// is a UUID; scopes.CheckClaims does that.
//
// Required: a valid signature by the configured algorithm, aud naming a
// configured audience, exp, iat, and iss from Issuers when any are set;
// nbf is checked when present; Leeway applies to exp, nbf and iat. Every
// registered claim must have its JSON type (times numbers, aud a string or
// array of strings, the rest strings) and appear once. Claims other than
// the registered ones land in Extra as encoding/json decodes them into an
// `any`, except that numbers are json.Number, so re-signing keeps them
// digit for digit.
//
// ctx only matters in JWKS mode, where an unknown kid may wait for a fetch.
//
// A token verified before is answered from a bounded cache of verified
// tokens while it is inside the window the verification accepted (see
// verifiedCache). The returned claims may be shared between calls: callers
// must not modify them.
func (v *Validator) Validate(ctx context.Context, raw string) (*scopes.Claims, error) {
	claims, outcome, err := v.validate(ctx, raw)
	if v.obs != nil {
		v.obs.ObserveToken(outcome)
	}
	return claims, err
}

func (v *Validator) validate(ctx context.Context, raw string) (*scopes.Claims, Outcome, error) {
	if len(raw) > MaxTokenSize {
		return nil, OutcomeMalformed, invalid("token larger than " + strconv.Itoa(MaxTokenSize) + " bytes")
	}
	var keys any
	if v.jwks != nil {
		keys = v.jwks.keys.Load()
	}
	now := v.now()
	if v.cache != nil {
		if claims, ok := v.cache.get(raw, now, keys); ok {
			return claims, OutcomeCacheHit, nil
		}
	}
	if err := checkAlphabet(raw); err != nil {
		return nil, OutcomeMalformed, err
	}
	c := &tokenClaims{issuers: v.issuers}
	tok, err := v.parser.ParseWithClaims(raw, c, func(t *jwt.Token) (any, error) {
		return v.keyFor(ctx, t)
	})
	if err != nil {
		ie := v.classify(err, tok)
		return nil, outcomeOf(ie), ie
	}
	claims := c.result()
	if v.cache != nil {
		// The window the parser just accepted: iat and nbf minus leeway up
		// to exp plus leeway (the upper end one instant short, which only
		// sends that instant back to full validation).
		from := claims.IssuedAt
		if claims.NotBefore.After(from) {
			from = claims.NotBefore
		}
		v.cache.put(raw, cacheEntry{
			claims: claims, from: from.Add(-v.leeway), until: claims.ExpiresAt.Add(v.leeway), keys: keys,
		}, now)
	}
	return claims, OutcomeValid, nil
}

// checkAlphabet refuses anything but three base64url segments. Base64
// decoders skip CR and LF, so without this a token with a line break in its
// signature would be a second accepted spelling of the same token.
func checkAlphabet(raw string) error {
	if raw == "" {
		return invalid("malformed: empty token")
	}
	dots := 0
	for i := 0; i < len(raw); i++ {
		switch b := raw[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '-', b == '_':
		case b == '.':
			dots++
		default:
			return invalid("malformed: character outside the base64url alphabet at offset " + strconv.Itoa(i))
		}
	}
	if dots != 2 {
		return invalid("malformed: " + strconv.Itoa(dots+1) + " segments, want 3")
	}
	return nil
}

// keyFor is the jwt.Keyfunc. Only "kid" is read from the header, and only
// in JWKS mode: with one key there is nothing to select, and "jku", "x5u"
// or "jwk" would let the token choose its own trust anchor.
func (v *Validator) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 §4.1.11: no extension is understood, so none may be critical.
		return nil, invalid("crit header is not supported")
	}
	switch {
	case v.jwks != nil:
		raw, ok := t.Header["kid"]
		if !ok {
			return nil, invalid("missing kid")
		}
		kid, ok := raw.(string)
		if !ok {
			return nil, invalid("kid has wrong type")
		}
		return v.jwks.key(ctx, kid)
	case v.pub != nil:
		return v.pub, nil
	default:
		return v.secret, nil
	}
}

// classify turns golang-jwt's error into one invalidError with a precise,
// log-friendly reason.
func (v *Validator) classify(err error, tok *jwt.Token) error {
	var ie *invalidError
	if errors.As(err, &ie) {
		return ie
	}
	var ce *claimError
	hasClaimErr := errors.As(err, &ce)
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		if hasClaimErr {
			return invalid(ce.Error())
		}
		return invalid("malformed: " + strings.TrimPrefix(err.Error(), jwt.ErrTokenMalformed.Error()+": "))
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// The alg header is missing or names no known method.
		return invalid("alg not allowed: " + headerAlg(tok))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if tok != nil && tok.Method != nil && tok.Method.Alg() != v.alg {
			return invalid("alg not allowed: " + headerAlg(tok))
		}
		return invalid("bad signature")
	}
	var reasons []string
	if hasClaimErr {
		reasons = append(reasons, ce.Error())
	}
	for _, m := range [...]struct {
		err    error
		reason string
	}{
		{jwt.ErrTokenExpired, "expired"},
		{jwt.ErrTokenNotValidYet, "nbf in the future"},
		{jwt.ErrTokenUsedBeforeIssued, "iat in the future"},
		{jwt.ErrTokenInvalidAudience, "bad aud"},
		{errBadIssuer, "bad iss"},
	} {
		if errors.Is(err, m.err) {
			reasons = append(reasons, m.reason)
		}
	}
	if len(reasons) == 0 {
		return invalid(err.Error())
	}
	return invalid(strings.Join(reasons, ", "))
}

func headerAlg(tok *jwt.Token) string {
	if tok == nil {
		return "(none)"
	}
	a, ok := tok.Header["alg"]
	if !ok {
		return "(none)"
	}
	return quoteForLog(fmt.Sprint(a))
}

// quoteForLog quotes an attacker-chosen header value, cut short so a token
// cannot fill the log.
func quoteForLog(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strconv.Quote(s)
}

// Run keeps a JWKS fresh: every JWKSRetry it reloads the set if the last
// success is older than JWKSRefresh (a failed reload is retried on the next
// tick). It returns nil when ctx is done. Without a JWKS it only waits for
// ctx. The caller runs it in a goroutine and waits for it to return.
func (v *Validator) Run(ctx context.Context) error {
	if v.jwks == nil {
		<-ctx.Done()
		return nil
	}
	ticks, stop := v.newTicker(v.jwks.retry)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
			_ = v.jwks.refreshIfDue(ctx, false) // failures are kept for Health
		}
	}
}

// Health reports whether the validator can be trusted to have current keys:
// in JWKS mode it fails if the set was never loaded or the last successful
// load is older than three refresh intervals (Airflow's rule, wired into
// the health endpoint). Other modes are always healthy.
func (v *Validator) Health() error {
	if v.jwks == nil {
		return nil
	}
	return v.jwks.health()
}

// Algorithm returns the one algorithm tokens must be signed with.
func (v *Validator) Algorithm() string { return v.alg }

func realTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}
