package tokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/taskgate/taskgate/scopes"
)

// Validator verifies task tokens. It is safe for concurrent use; build one
// at start-up and share it.
type Validator struct {
	alg     string         // JWKS mode: the configured algorithm
	parser  *jwt.Parser    // JWKS mode; the ring's parsers are in parsed
	options []parserOption // everything but the algorithms, which come from configuration or the key set
	issuers []string
	ring    *KeyRing // key-set mode: every key of the ring verifies
	parsed  atomic.Pointer[ringParser]
	jwks    *jwks // trusted_jwks_url mode
	now     func() time.Time
	leeway  time.Duration
	cache   *verifiedCache // nil when disabled
	obs     Observer       // nil: nobody counts outcomes

	// newTicker drives Run; tests replace it to tick by hand.
	newTicker func(time.Duration) (<-chan time.Time, func())
}

type parserOption = jwt.ParserOption

// ringParser is the parser for one version of the key ring: its valid
// methods are the algorithms of that version's keys.
type ringParser struct {
	state  *ringState
	parser *jwt.Parser
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
	v.options = []parserOption{
		jwt.WithAudience(cfg.Audiences...),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(cfg.now()),
		// Together with the alphabet check in Validate this makes the
		// token text canonical: one signed claim set has exactly one
		// accepted spelling, so a cache keyed by the token string is sound.
		jwt.WithStrictDecoding(),
	}
	if cfg.TrustedJWKSURL != "" {
		alg, err := resolveAlgorithm(cfg.Algorithm, kindJWKS)
		if err != nil {
			return nil, err
		}
		v.alg = alg
		v.parser = v.newParser([]string{alg})
		if v.jwks, err = newJWKS(&cfg, alg); err != nil {
			return nil, err
		}
		_ = v.jwks.refreshIfDue(context.Background(), false) // recorded for Health
		return v, nil
	}
	v.ring = cfg.Ring
	if v.ring == nil {
		if len(cfg.Secret) == 0 && cfg.PrivateKeyPath == "" {
			return nil, errors.New("tokens: no verification key: set trusted_jwks_url, jwt_private_key_path or jwt_secret")
		}
		k, err := ConfiguredKey(cfg)
		if err != nil {
			return nil, err
		}
		if v.ring, err = NewKeyRing(KeySet{Keys: []StoredKey{k}}); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// newParser builds a parser accepting exactly algs: the algorithm comes from
// configuration (or the stored key set), never from a token. "none", other
// algorithms and HS512 "signed" with a public key are refused before any
// key is used.
func (v *Validator) newParser(algs []string) *jwt.Parser {
	return jwt.NewParser(append([]parserOption{jwt.WithValidMethods(algs)}, v.options...)...)
}

// ringParser returns the parser for the ring's current version, building
// it on the first token after a change of the set.
func (v *Validator) currentRingParser() *ringParser {
	st := v.ring.state.Load()
	if p := v.parsed.Load(); p != nil && p.state == st {
		return p
	}
	p := &ringParser{state: st, parser: v.newParser(st.methods)}
	v.parsed.Store(p)
	return p
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
	// keys is the key set this validation uses; a cached verification
	// counts only while the set it was made with is still the current one,
	// so a retired key or a JWKS that dropped one stops its tokens at once.
	var keys any
	parser := v.parser
	var st *ringState
	if v.jwks != nil {
		keys = v.jwks.keys.Load()
	} else {
		rp := v.currentRingParser()
		parser, st, keys = rp.parser, rp.state, rp.state
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
	tok, err := parser.ParseWithClaims(raw, c, func(t *jwt.Token) (any, error) {
		return v.keyFor(ctx, t, st)
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
		v.cache.put(cacheEntry{
			raw: raw, claims: claims, from: from.Add(-v.leeway), until: claims.ExpiresAt.Add(v.leeway), keys: keys,
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

// keyFor is the jwt.Keyfunc. Only "kid" is read from the header: it selects
// a key of the JWKS or of the key set st. "jku", "x5u" or "jwk" would let
// the token choose its own trust anchor.
func (v *Validator) keyFor(ctx context.Context, t *jwt.Token, st *ringState) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 §4.1.11: no extension is understood, so none may be critical.
		return nil, invalid("crit header is not supported")
	}
	if v.jwks == nil {
		return st.verificationKey(t)
	}
	raw, ok := t.Header["kid"]
	if !ok {
		return nil, invalid("missing kid")
	}
	kid, ok := raw.(string)
	if !ok {
		return nil, invalid("kid has wrong type")
	}
	return v.jwks.key(ctx, kid)
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
		if tok != nil && tok.Method != nil && !slices.Contains(v.algorithms(), tok.Method.Alg()) {
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

// Algorithm returns the algorithm tokens must be signed with: the
// configured one with a JWKS, else the active key's.
func (v *Validator) Algorithm() string {
	if v.ring != nil {
		return v.ring.Algorithm()
	}
	return v.alg
}

// algorithms are the algorithms a token may be signed with now.
func (v *Validator) algorithms() []string {
	if v.ring != nil {
		return v.ring.state.Load().methods
	}
	return []string{v.alg}
}

func realTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}
