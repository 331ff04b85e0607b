package pgstore

import (
	"errors"
	"fmt"
)

// Cipher is Airflow's Fernet with [core] fernet_key, as
// airflow/models/crypto.py get_fernet builds it (a MultiFernet of the
// comma-separated keys): Encrypt makes a token with the first key, Decrypt
// accepts a token of any key and checks no TTL. fernet.MultiKey implements
// it; pgstore declares it so that it knows no key format.
type Cipher interface {
	Encrypt(plain []byte) (string, error)
	Decrypt(token string) ([]byte, error)
}

// ErrDecrypt wraps every failure to read an encrypted variable or
// connection field: no fernet_key is configured, none of its keys made the
// token, or the token is damaged. The error names the row and the field, so
// that the log of the 500 says what to fix; it never holds the value.
var ErrDecrypt = errors.New("pgstore: cannot decrypt")

// encrypt is Airflow's encryption of a value about to be stored: the token
// and true with a cipher, the value itself and false without one
// (_NullFernet, whose is_encrypted is false).
func (db *DB) encrypt(what string, plain string) (stored string, encrypted bool, err error) {
	if db.opts.Cipher == nil {
		return plain, false, nil
	}
	tok, err := db.opts.Cipher.Encrypt([]byte(plain))
	if err != nil {
		return "", false, fmt.Errorf("pgstore: encrypt %s: %w", what, err)
	}
	return tok, true, nil
}

// decrypt reads a value stored with its is_encrypted flag set. The flag
// alone says whether a value is a token: a value is never guessed to be one
// from what it looks like.
func (db *DB) decrypt(what string, token string) (string, error) {
	if db.opts.Cipher == nil {
		return "", fmt.Errorf("%w %s: it is encrypted and no [core] fernet_key is configured", ErrDecrypt, what)
	}
	plain, err := db.opts.Cipher.Decrypt(token)
	if err != nil {
		return "", fmt.Errorf("%w %s: %w (is the fernet_key that encrypted it still among [core] fernet_key?)", ErrDecrypt, what, err)
	}
	return string(plain), nil
}
