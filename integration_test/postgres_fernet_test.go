package integration_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	binenc "encoding/binary"
	"errors"
	"testing"
	"time"
)

// Fernet (github.com/fernet/spec), as Airflow's [core] fernet_key uses it
// through the cryptography package: the tests encrypt rows as Airflow would
// and decrypt what taskgate stored, independently of taskgate's own code.

// fernetToken encrypts msg with key (base64url of 32 bytes: signing key,
// then encryption key) at time now with iv.
func fernetToken(key string, msg []byte, now time.Time, iv []byte) (string, error) {
	k, err := base64.URLEncoding.DecodeString(key)
	if err != nil || len(k) != 32 {
		return "", errors.New("fernet: key must be 32 bytes of base64url")
	}
	block, err := aes.NewCipher(k[16:])
	if err != nil {
		return "", err
	}
	pad := aes.BlockSize - len(msg)%aes.BlockSize
	plain := append(append([]byte(nil), msg...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	out := make([]byte, 1+8+16, 1+8+16+len(plain)+32)
	out[0] = 0x80
	binenc.BigEndian.PutUint64(out[1:9], uint64(now.Unix()))
	copy(out[9:25], iv)
	ct := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, plain)
	out = append(out, ct...)
	mac := hmac.New(sha256.New, k[:16])
	mac.Write(out)
	return base64.URLEncoding.EncodeToString(mac.Sum(out)), nil
}

// fernetEncrypt is Fernet.encrypt: the current time and a random iv.
func fernetEncrypt(t *testing.T, key string, msg []byte) string {
	t.Helper()
	iv := make([]byte, 16)
	if _, err := rand.Read(iv); err != nil {
		t.Fatal(err)
	}
	tok, err := fernetToken(key, msg, time.Now(), iv)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// fernetDecrypt is Fernet.decrypt without a ttl.
func fernetDecrypt(key, token string) ([]byte, error) {
	bad := errors.New("fernet: invalid token")
	k, err := base64.URLEncoding.DecodeString(key)
	if err != nil || len(k) != 32 {
		return nil, errors.New("fernet: key must be 32 bytes of base64url")
	}
	b, err := base64.URLEncoding.DecodeString(token)
	if err != nil || len(b) < 1+8+16+16+32 || b[0] != 0x80 || (len(b)-1-8-16-32)%aes.BlockSize != 0 {
		return nil, bad
	}
	body, sum := b[:len(b)-32], b[len(b)-32:]
	mac := hmac.New(sha256.New, k[:16])
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), sum) {
		return nil, bad
	}
	block, err := aes.NewCipher(k[16:])
	if err != nil {
		return nil, err
	}
	ct := append([]byte(nil), body[25:]...)
	cipher.NewCBCDecrypter(block, body[9:25]).CryptBlocks(ct, ct)
	pad := int(ct[len(ct)-1])
	if pad < 1 || pad > aes.BlockSize || !bytes.Equal(ct[len(ct)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, bad
	}
	return ct[:len(ct)-pad], nil
}

// TestPostgresFernetHelper holds the tests' Fernet to the specification's
// own vector (fernet/spec generate.json and verify.json), so that a row the
// tests encrypt is what Airflow writes and a value they decrypt is what
// Airflow would read.
func TestPostgresFernetHelper(t *testing.T) {
	const (
		secret = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
		token  = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA=="
	)
	now, err := time.Parse(time.RFC3339, "1985-10-26T01:20:00-07:00")
	if err != nil {
		t.Fatal(err)
	}
	iv := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	got, err := fernetToken(secret, []byte("hello"), now, iv)
	if err != nil || got != token {
		t.Errorf("fernetToken(spec vector) = %q, %v; want %q", got, err, token)
	}
	plain, err := fernetDecrypt(secret, token)
	if err != nil || string(plain) != "hello" {
		t.Errorf("fernetDecrypt(spec vector) = %q, %v; want hello", plain, err)
	}
	if _, err := fernetDecrypt(secret, token[:len(token)-4]+"AAA="); err == nil {
		t.Errorf("fernetDecrypt accepted a token with a broken HMAC")
	}
}
