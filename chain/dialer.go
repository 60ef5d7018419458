// Package chain builds connections through an ordered list of upstream
// proxies (hops) and relays bytes between the two ends of a connection.
//
// Everything here speaks one shape, Dialer, so front ends, policy, chains
// and test fakes are interchangeable, and net.Dialer fits as is.
package chain

import (
	"context"
	"net"
)

// Dialer opens a stream to addr ("host:port"). When the host is a name it
// stays a name: only the exit at the far end of a chain resolves it.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// DialerFunc adapts a function to a Dialer.
type DialerFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// DialContext calls f.
func (f DialerFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}
