//go:build taskgate_jwtlib

package tokens

// libraryPath selects golang-jwt with encoding/json claims (jsonClaims)
// instead of the hand-written claims scanner and signer.
var libraryPath = true
