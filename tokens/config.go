package tokens

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The algorithms a deployment can configure, spelled as JOSE spells them.
const (
	algHS512 = "HS512"
	algRS256 = "RS256"
	algRS512 = "RS512"
	algEdDSA = "EdDSA"
	algGuess = "GUESS"
)

// Defaults applied to zero Config fields.
const (
	// DefaultJWKSRefresh is how old a JWKS may get before it is fetched
	// again; it is Airflow's refresh_interval_secs.
	DefaultJWKSRefresh = time.Hour
	// DefaultJWKSRetry is the minimum gap between two JWKS fetch attempts;
	// it is Airflow's refresh_retry_interval_secs and bounds how often a
	// stream of tokens with made-up kids can make the gateway fetch.
	DefaultJWKSRetry = 10 * time.Second
	// DefaultHTTPTimeout bounds one JWKS fetch when Config.HTTPClient is nil.
	DefaultHTTPTimeout = 5 * time.Second
)

// Limits on untrusted or operator-supplied input.
const (
	// MaxTokenSize is the largest token Validate will look at. Airflow's
	// tokens are a few hundred bytes; refusing larger ones before parsing
	// keeps a flood of huge headers from costing decode time.
	MaxTokenSize = 8 << 10
	// minSecretSize is the shortest HS512 secret accepted. Airflow's own
	// generated secret is 16 random bytes, base64-encoded (24 characters).
	minSecretSize = 16
	// minRSABits is the smallest RSA signing key accepted.
	minRSABits = 2048
)

// Config holds the [api_auth]/[execution_api] settings that concern tokens.
// Zero values get the documented defaults. The same Config is given to
// NewSigner and NewValidator so that what one mints the other accepts.
type Config struct {
	// Secret is [api_auth] jwt_secret, used as the HS512 key byte for byte
	// (Airflow uses the configured string itself, not a decoding of it).
	// At least 16 bytes.
	Secret []byte
	// PrivateKeyPath is [api_auth] jwt_private_key_path: an unencrypted PEM
	// RSA or Ed25519 private key (PKCS8 "PRIVATE KEY" or PKCS1
	// "RSA PRIVATE KEY"). Exactly one of Secret and PrivateKeyPath may be set.
	PrivateKeyPath string
	// Ring, when set, is the key set to sign with (its active key) and to
	// verify with (every key in it), in place of Secret or PrivateKeyPath:
	// see KeyRing and Manager. A TrustedJWKSURL still takes precedence for
	// verification.
	Ring *KeyRing
	// Algorithm is [api_auth] jwt_algorithm: "", "GUESS", "HS512", "RS256",
	// "RS512" or "EdDSA". ""/"GUESS" choose from the key as Airflow does:
	// HS512 for a secret, RS512 for RSA, EdDSA for Ed25519.
	Algorithm string
	// KID is [api_auth] jwt_kid. Empty means the RFC 7638 thumbprint of the
	// public key. It is only emitted for asymmetric keys.
	KID string
	// Issuers is [api_auth] jwt_issuer. Tokens are minted with the first;
	// when non-empty, validated tokens must carry one of them in "iss".
	Issuers []string
	// Audiences is [execution_api] jwt_audience. Tokens are minted with the
	// first; a validated token must name at least one of them. Required.
	Audiences []string
	// Leeway is [api_auth] jwt_leeway (Airflow's default is 10 s), applied
	// to exp, nbf and iat. Negative is an error.
	Leeway time.Duration
	// TrustedJWKSURL is [api_auth] trusted_jwks_url: an http(s) URL or a
	// local file path. When set, the validator takes its keys from it, and
	// Algorithm must be set explicitly.
	TrustedJWKSURL string
	// JWKSRefresh is how often the JWKS is reloaded; default 1 h. A file JWKS
	// is re-read on the same cadence (Airflow reads it once) so that key
	// rotation works without a restart.
	JWKSRefresh time.Duration
	// JWKSRetry is the minimum gap between JWKS fetch attempts, including
	// the refetch triggered by an unknown kid; default 10 s.
	JWKSRetry time.Duration
	// HTTPClient fetches a remote JWKS; default a client with a 5 s timeout.
	HTTPClient *http.Client
	// Now is the clock; default time.Now. Tests move a fake clock instead
	// of sleeping.
	Now func() time.Time
	// CacheSize bounds how many verified tokens a Validator remembers so
	// that a worker's repeated requests skip signature verification; 0
	// means DefaultCacheSize, negative disables the cache.
	CacheSize int
	// Observer, when set, is told the outcome of every Validate (metrics).
	Observer Observer
}

// keyKind says where the key material comes from; the algorithm must fit it.
type keyKind int

const (
	kindSecret keyKind = iota + 1
	kindRSA
	kindEd25519
	kindJWKS
)

func (k keyKind) String() string {
	switch k {
	case kindSecret:
		return "a symmetric secret (jwt_secret)"
	case kindRSA:
		return "an RSA private key (jwt_private_key_path)"
	case kindEd25519:
		return "an Ed25519 private key (jwt_private_key_path)"
	case kindJWKS:
		return "a JWKS (trusted_jwks_url)"
	}
	return "no key"
}

// resolveAlgorithm turns the configured algorithm into the one algorithm the
// signer or validator will use, refusing one that cannot work with the key.
func resolveAlgorithm(configured string, kind keyKind) (string, error) {
	switch configured {
	case "", algGuess:
		switch kind {
		case kindSecret:
			return algHS512, nil
		case kindRSA:
			return algRS512, nil
		case kindEd25519:
			return algEdDSA, nil
		case kindJWKS:
			return "", errors.New("tokens: cannot guess the algorithm when using trusted_jwks_url; set jwt_algorithm")
		}
	case algHS512:
		if kind == kindSecret {
			return algHS512, nil
		}
	case algRS256, algRS512:
		if kind == kindRSA || kind == kindJWKS {
			return configured, nil
		}
	case algEdDSA:
		if kind == kindEd25519 || kind == kindJWKS {
			return algEdDSA, nil
		}
	default:
		return "", fmt.Errorf("tokens: unsupported jwt_algorithm %q (want HS512, RS256, RS512 or EdDSA)", configured)
	}
	return "", fmt.Errorf("tokens: jwt_algorithm %s cannot be used with %s", configured, kind)
}

// signingMethod maps a resolved algorithm to golang-jwt's implementation.
func signingMethod(alg string) jwt.SigningMethod {
	switch alg {
	case algHS512:
		return jwt.SigningMethodHS512
	case algRS256:
		return jwt.SigningMethodRS256
	case algRS512:
		return jwt.SigningMethodRS512
	case algEdDSA:
		return jwt.SigningMethodEdDSA
	}
	return nil
}

// checkCommon validates the settings shared by the signer and validator.
func (c *Config) checkCommon() error {
	if c.Ring != nil && (len(c.Secret) > 0 || c.PrivateKeyPath != "") {
		return errors.New("tokens: a key ring and jwt_secret or jwt_private_key_path are both given; the ring holds the configured key")
	}
	if len(c.Secret) > 0 && c.PrivateKeyPath != "" {
		return errors.New("tokens: jwt_secret and jwt_private_key_path are both set; set exactly one")
	}
	if len(c.Secret) > 0 && len(c.Secret) < minSecretSize {
		return fmt.Errorf("tokens: jwt_secret is %d bytes; at least %d are required", len(c.Secret), minSecretSize)
	}
	if len(c.Audiences) == 0 {
		return errors.New("tokens: no audience configured ([execution_api] jwt_audience)")
	}
	for _, a := range c.Audiences {
		if a == "" {
			return errors.New("tokens: empty audience in [execution_api] jwt_audience")
		}
	}
	for _, iss := range c.Issuers {
		if iss == "" {
			return errors.New("tokens: empty issuer in [api_auth] jwt_issuer")
		}
	}
	if c.Leeway < 0 {
		return fmt.Errorf("tokens: negative leeway %s", c.Leeway)
	}
	if c.JWKSRefresh < 0 || c.JWKSRetry < 0 {
		return errors.New("tokens: negative JWKS refresh or retry interval")
	}
	return nil
}

func (c *Config) now() func() time.Time {
	if c.Now != nil {
		return c.Now
	}
	return time.Now
}

// loadPrivateKey reads the first RSA or Ed25519 private key in a PEM file.
func loadPrivateKey(path string) (crypto.Signer, keyKind, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("tokens: read private key: %w", err)
	}
	return parsePrivateKeyPEM(data, path)
}

// parsePrivateKeyPEM reads the first RSA or Ed25519 private key in PEM data;
// name says where the data came from, for messages.
func parsePrivateKeyPEM(data []byte, path string) (crypto.Signer, keyKind, error) {
	rest := data
	var err error
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, 0, fmt.Errorf("tokens: %s: no PEM \"PRIVATE KEY\" or \"RSA PRIVATE KEY\" block", path)
		}
		var key any
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			if _, encrypted := block.Headers["Proc-Type"]; encrypted {
				return nil, 0, fmt.Errorf("tokens: %s: encrypted private keys are not supported", path)
			}
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, 0, fmt.Errorf("tokens: %s: encrypted private keys are not supported", path)
		default:
			continue // e.g. a certificate or EC parameters next to the key
		}
		if err != nil {
			return nil, 0, fmt.Errorf("tokens: %s: parse %s: %w", path, block.Type, err)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey:
			if bits := k.N.BitLen(); bits < minRSABits {
				return nil, 0, fmt.Errorf("tokens: %s: RSA key has %d bits; at least %d are required", path, bits, minRSABits)
			}
			return k, kindRSA, nil
		case ed25519.PrivateKey:
			return k, kindEd25519, nil
		default:
			return nil, 0, fmt.Errorf("tokens: %s: unsupported private key type %T (want RSA or Ed25519)", path, key)
		}
	}
}

// thumbprint returns the RFC 7638 JWK thumbprint of an RSA or Ed25519
// public key: base64url(SHA-256(canonical JWK)). Airflow uses it as the kid
// when jwt_kid is unset, so a validator can find the key in a JWKS without
// the operator naming it.
func thumbprint(pub crypto.PublicKey) (string, error) {
	var canonical string
	switch k := pub.(type) {
	case *rsa.PublicKey:
		e := big.NewInt(int64(k.E)).Bytes()
		canonical = `{"e":"` + base64.RawURLEncoding.EncodeToString(e) +
			`","kty":"RSA","n":"` + base64.RawURLEncoding.EncodeToString(k.N.Bytes()) + `"}`
	case ed25519.PublicKey:
		canonical = `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(k) + `"}`
	default:
		return "", fmt.Errorf("tokens: no thumbprint for key type %T", pub)
	}
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// isRemote reports whether a trusted_jwks_url is fetched over HTTP; anything
// else is a local file path, as in Airflow.
func isRemote(url string) bool {
	l := strings.ToLower(url)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}
