package gateway

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/operator"
)

// Keys is the signing key set: the admin API lists, rotates and retires its
// keys (operator.KeyManager), and the public halves of its asymmetric keys
// are published as a JWKS for other verifiers.
type Keys interface {
	operator.KeyManager
	// JWKS is the RFC 7517 document of the public keys; with HS512 keys
	// it lists none, since a secret is never published.
	JWKS() []byte
}

// keysBody is the admin API's answer about the key set.
type keysBody struct {
	Keys         []operator.SigningKey `json:"keys"`
	TotalEntries int                   `json:"total_entries"`
}

func keysResponse(c echo.Context, status int, ks []operator.SigningKey) error {
	if ks == nil {
		ks = []operator.SigningKey{}
	}
	return c.JSON(status, keysBody{Keys: ks, TotalEntries: len(ks)})
}

// handleListKeys is GET /api/v2/keys.
func (s *Server) handleListKeys(c echo.Context) error {
	ks, err := s.ops.Keys(c.Request().Context())
	if err != nil {
		return err
	}
	return keysResponse(c, http.StatusOK, ks)
}

// handleRotateKey is POST /api/v2/keys/rotate: a new active key; the
// answer lists the keys, the replaced one with its retire_after.
func (s *Server) handleRotateKey(c echo.Context) error {
	ks, err := s.ops.RotateKey(c.Request().Context())
	if err != nil {
		return err
	}
	return keysResponse(c, http.StatusOK, ks)
}

// handleRetireKey is DELETE /api/v2/keys/{kid}[?force=true]: the keys left.
// A key that may still verify live tokens is refused (400) unless forced.
func (s *Server) handleRetireKey(c echo.Context) error {
	force, err := queryBool(c, "force")
	if err != nil {
		return err
	}
	ks, err := s.ops.RetireKey(c.Request().Context(), c.Param("kid"), force)
	if err != nil {
		return err
	}
	return keysResponse(c, http.StatusOK, ks)
}

// jwksDocument is the JWKS route's body (RFC 7517): public keys only.
type jwksDocument struct {
	Keys []jwkBody `json:"keys"`
}

// jwkBody is one public key: kty RSA with n and e, or OKP Ed25519 with x.
type jwkBody struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
}

// keyModels are the bodies of the key set's public route (see modelTables).
var keyModels = map[string]routeModel{
	"GET /execution/.well-known/jwks.json": {Response: jwksDocument{}},
}

// handleJWKS is GET /execution/.well-known/jwks.json, public: the keys that
// verify taskgate's tokens, for another taskgate or Airflow's api-server
// configured with [api_auth] trusted_jwks_url. Verifiers cache it; a
// rotation adds the new key before it signs anything a verifier will see
// only if they fetch on an unknown kid, which taskgate's and Airflow's do.
func (s *Server) handleJWKS(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=60")
	return c.JSONBlob(http.StatusOK, s.cfg.Keys.JWKS())
}
