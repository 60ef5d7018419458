package chain

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
)

// Stream isolation keeps connections that should not be linked apart at a
// hop: through a SOCKS5 hop by distinct credentials per key (what Tor's
// IsolateSOCKSAuth, on by default, turns into separate circuits), through
// an SSH hop by separate SSH connections per key.

// Isolation says which connections may share a circuit or connection at a hop.
type Isolation int

const (
	// IsolateNone: every connection shares.
	IsolateNone Isolation = iota
	// IsolateListener: connections from one listener share.
	IsolateListener
	// IsolateUser: connections of one front-end user share (without a
	// user, those of one listener).
	IsolateUser
	// IsolateDestination: connections to one destination host share.
	IsolateDestination
	// IsolateConnection: no two connections share.
	IsolateConnection
)

var isolationNames = []string{"none", "listener", "user", "destination", "connection"}

// ParseIsolation reads none, listener, user, destination or connection
// ("" is none).
func ParseIsolation(s string) (Isolation, error) {
	if s == "" {
		return IsolateNone, nil
	}
	for i, n := range isolationNames {
		if s == n {
			return Isolation(i), nil
		}
	}
	return 0, fmt.Errorf("isolate=%q: want none, listener, user, destination or connection", s)
}

func (i Isolation) String() string {
	if i >= 0 && int(i) < len(isolationNames) {
		return isolationNames[i]
	}
	return fmt.Sprintf("Isolation(%d)", int(i))
}

// Origin is where a connection came from, as far as isolation cares: the
// listener it came in on and the user it authenticated as. policy sets it
// (policy.WithClient) for every connection a front end makes.
type Origin struct {
	Listener string
	User     string
}

type originKey struct{}
type destinationKey struct{}

// WithOrigin returns ctx carrying o, for hops that isolate streams.
func WithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

func originFrom(ctx context.Context) Origin {
	o, _ := ctx.Value(originKey{}).(Origin)
	return o
}

// withDestination records the chain's destination for hops that isolate
// by it (a hop in the middle of a chain sees only the next hop's address).
func withDestination(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, destinationKey{}, addr)
}

// isolationKey is the key that connections under ctx share at a hop
// isolating by i. shared is false for IsolateConnection: the connection
// shares with nobody, and the key is fresh.
func isolationKey(ctx context.Context, i Isolation) (key string, shared bool) {
	o := originFrom(ctx)
	switch i {
	case IsolateListener:
		return "l\x00" + o.Listener, true
	case IsolateUser:
		if o.User == "" {
			return "l\x00" + o.Listener, true
		}
		return "u\x00" + o.User, true
	case IsolateDestination:
		dest, _ := ctx.Value(destinationKey{}).(string)
		if host, _, err := net.SplitHostPort(dest); err == nil {
			dest = host
		}
		return "d\x00" + dest, true
	case IsolateConnection:
		return "c\x00" + rand.Text(), false
	}
	return "", true
}

// isolationCredentials is the SOCKS5 user name and password standing for
// key at one hop: an HMAC under the hop's salt, so the hop learns neither
// listener, user nor destination from it, and the names cannot be linked
// across hops or config loads.
func isolationCredentials(salt []byte, key string) (user, pass string) {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(key))
	return "vc-" + hex.EncodeToString(m.Sum(nil)[:16]), "isolate"
}
