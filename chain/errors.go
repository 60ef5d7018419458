package chain

import (
	"context"
	"errors"
	"fmt"
)

// Errors born in this package. Front ends map them to protocol replies in
// one function each (socks.replyCode, and the HTTP front end's status map).
var (
	// ErrNoHops is returned by a Chain with no hops: a chain never goes direct.
	ErrNoHops = errors.New("chain has no hops")
	// ErrHopAuth means a hop rejected our credentials or offered no method we can use.
	ErrHopAuth = errors.New("hop rejected authentication")
	// ErrForbidden means an exit refused a destination by its address range.
	ErrForbidden = errors.New("destination address is not allowed")
	// ErrBadAddress means a destination address cannot be sent to a hop.
	ErrBadAddress = errors.New("bad destination address")
	// ErrProtocol means a hop answered something that is not the protocol.
	ErrProtocol = errors.New("hop protocol error")
	// ErrBlocked means policy refused the destination. It lives here, not
	// in policy, so front ends map it without knowing about rules.
	ErrBlocked = errors.New("refused by policy")
	// ErrLoop means a connection came from this process's own chain (see
	// LoopGuard): a first hop points back at one of our front ends.
	ErrLoop = errors.New("connection from this process's own chain: a first hop points back at this front end")
)

// HopError says which hop of a chain failed. Its text never contains the
// destination, so it can be logged at info level.
type HopError struct {
	Index int    // 0-based position in the chain
	Addr  string // the hop's own host:port
	Err   error
	// Destination is set when the hop is the exit and Err is its answer
	// about the destination: the request went all the way through.
	Destination bool
}

func (e *HopError) Error() string {
	return fmt.Sprintf("hop %d (%s): %v", e.Index+1, e.Addr, e.Err)
}

func (e *HopError) Unwrap() error { return e.Err }

// LateHopError is the hop that failed when a relay over an early-answered
// (Optimistic) chain ended because the chain was refused after all, not
// because we closed it first: what a front end logs as a chain failure.
func LateHopError(err error) (*HopError, bool) {
	hop, ok := errors.AsType[*HopError](err)
	return hop, ok && !errors.Is(err, context.Canceled)
}

// ReplyError is a SOCKS5 hop's refusal to connect onward, with the reply
// code it sent, so a front end can hand the same code to its client.
type ReplyError struct {
	Code byte
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("%s (socks reply 0x%02x)", ReplyText(e.Code), e.Code)
}

// ReplyText names a SOCKS5 reply code (RFC 1928 section 6).
func ReplyText(code byte) string {
	switch code {
	case 0x00:
		return "succeeded"
	case 0x01:
		return "general failure"
	case 0x02:
		return "connection not allowed by ruleset"
	case 0x03:
		return "network unreachable"
	case 0x04:
		return "host unreachable"
	case 0x05:
		return "connection refused"
	case 0x06:
		return "TTL expired"
	case 0x07:
		return "command not supported"
	case 0x08:
		return "address type not supported"
	}
	return "unknown reply"
}
