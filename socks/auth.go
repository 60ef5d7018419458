package socks

import (
	"crypto/sha256"
	"crypto/subtle"
)

// Authenticator checks a user name and password given by the client at
// source (its host:port). policy.Users and Credentials implement it.
type Authenticator interface {
	Authenticate(source, user, password string) bool
}

// Credentials maps user names to plain passwords (serve --user).
type Credentials map[string]string

// Authenticate implements Authenticator.
func (c Credentials) Authenticate(_, user, password string) bool { return c.Valid(user, password) }

// credentialStore adapts an Authenticator to go-socks5's CredentialStore
// for one client.
type credentialStore struct {
	auth   Authenticator
	source string
}

func (s credentialStore) Valid(user, password string) bool {
	return s.auth.Authenticate(s.source, user, password)
}

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
