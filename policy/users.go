package policy

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Users are the accounts front ends accept, with bcrypt password hashes.
// Failed attempts are rate-limited per source address. The zero value
// has no users; SetHashes fills it.
type Users struct {
	hashes map[string][]byte // guarded by mu

	// MaxFailures within Window from one source block it for the rest of
	// the window (defaults 5 and one minute).
	MaxFailures int
	Window      time.Duration
	// Logger, if set, hears of each source locked out (at info, with the
	// user name it last tried, never a password).
	Logger *slog.Logger

	mu       sync.Mutex
	failures map[string]*failures
	good     map[[32]byte]time.Time // recently verified credentials
	gen      int                    // bumped by SetHashes
}

type failures struct {
	n     int
	since time.Time
}

// dummyHash is compared against for unknown users, so that the time a
// check takes does not tell which user names exist. It is made on first
// use, not at package load, which cost every start (--help included)
// bcrypt's 70-185 ms.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("veilchain: no such user"), bcrypt.DefaultCost) // fails only on a bad cost or a password over 72 bytes
	return h
})

// NewUsers checks that every hash is a bcrypt hash.
func NewUsers(hashes map[string]string) (*Users, error) {
	u := &Users{}
	return u, u.SetHashes(hashes)
}

// SetHashes replaces the accounts (a reload), checking every hash first;
// on error nothing changes.
func (u *Users) SetHashes(hashes map[string]string) error {
	m := map[string][]byte{}
	for name, h := range hashes {
		if _, err := bcrypt.Cost([]byte(h)); err != nil {
			return fmt.Errorf("user %q: not a bcrypt hash (make one with `veilchain hash-password`): %w", name, err)
		}
		m[name] = []byte(h)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.hashes = m
	u.good = map[[32]byte]time.Time{} // a changed password must not stay good
	u.gen++
	if u.failures == nil {
		u.failures = map[string]*failures{}
	}
	return nil
}

// Authenticate checks user and password for a client at source
// ("host:port"); a source with too many recent failures is refused
// without a check.
func (u *Users) Authenticate(source, user, password string) bool {
	host, _, err := net.SplitHostPort(source)
	if err != nil {
		host = source
	}
	if u.limited(host) {
		return false
	}
	// bcrypt costs tens of milliseconds by design; a browser opens many
	// connections, so a credential verified recently is remembered (by
	// its SHA-256, for goodTTL).
	key := sha256.Sum256([]byte(user + "\x00" + password))
	if u.recentlyGood(key) {
		return true
	}
	// Made before the look-up: the first check pays for it whether the
	// user exists or not, so its time says nothing either.
	dummy := dummyHash()
	u.mu.Lock()
	hash, ok := u.hashes[user]
	gen := u.gen
	u.mu.Unlock()
	if !ok {
		hash = dummy
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil && ok {
		u.mu.Lock()
		if u.good == nil {
			u.good = map[[32]byte]time.Time{}
		}
		if gen == u.gen { // not if a reload came while bcrypt ran
			u.good[key] = time.Now()
		}
		u.mu.Unlock()
		return true
	}
	if u.fail(host) {
		if u.Logger != nil {
			u.Logger.Info("login locked out after repeated failures", "source", host, "user", user, "for", u.window())
		}
	}
	return false
}

const goodTTL = 5 * time.Minute

func (u *Users) recentlyGood(key [32]byte) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	t, ok := u.good[key]
	if ok && time.Since(t) > goodTTL {
		delete(u.good, key)
		ok = false
	}
	return ok
}

func (u *Users) window() time.Duration {
	if u.Window > 0 {
		return u.Window
	}
	return time.Minute
}

func (u *Users) limited(host string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	max := u.MaxFailures
	if max <= 0 {
		max = 5
	}
	f := u.failures[host]
	return f != nil && f.n >= max && time.Since(f.since) < u.window()
}

// fail counts a failed login from host, and says whether it was the one
// that locked host out.
func (u *Users) fail(host string) (lockedOut bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.failures == nil {
		u.failures = map[string]*failures{}
	}
	now := time.Now()
	if len(u.failures) > 10000 { // bound the table: forget expired entries
		for h, f := range u.failures {
			if now.Sub(f.since) >= u.window() {
				delete(u.failures, h)
			}
		}
	}
	f := u.failures[host]
	if f == nil || now.Sub(f.since) >= u.window() {
		if len(u.failures) > 10000 {
			return false // under a flood from many sources: stop growing the table
		}
		f = &failures{since: now}
		u.failures[host] = f
	}
	f.n++
	max := u.MaxFailures
	if max <= 0 {
		max = 5
	}
	return f.n == max
}
