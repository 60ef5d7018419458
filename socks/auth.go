package socks

import (
	"crypto/sha256"
	"crypto/subtle"
)

// Credentials maps user names to passwords for RFC 1929 auth.
type Credentials map[string]string

// Valid checks user and password in time that does not depend on how much
// of the password matched (go-socks5's StaticCredentials uses ==).
func (c Credentials) Valid(user, password string) bool {
	want, ok := c[user]
	if !ok {
		want = "\x00no such user" // still compare, so timing does not tell users apart
	}
	w, g := sha256.Sum256([]byte(want)), sha256.Sum256([]byte(password))
	return subtle.ConstantTimeCompare(w[:], g[:]) == 1 && ok
}
