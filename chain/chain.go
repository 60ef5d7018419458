package chain

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// DefaultHandshakeTimeout bounds each hop's handshake when Chain.HandshakeTimeout is zero.
const DefaultHandshakeTimeout = 10 * time.Second

// Chain is a Dialer that reaches addr through Hops, in order: it dials the
// first hop, then asks each hop to connect to the next one, and the last
// hop (the exit) to connect to addr. It never connects anywhere directly
// except to the first hop, and it never resolves addr.
type Chain struct {
	Hops []Hop
	// Forward reaches the first hop; nil means a net.Dialer with ConnectTimeout.
	Forward Dialer
	// ConnectTimeout bounds the TCP connect to the first hop (default 10 s).
	ConnectTimeout time.Duration
	// HandshakeTimeout bounds each hop's handshake (default 10 s).
	HandshakeTimeout time.Duration
}

// DialContext implements Dialer. Errors are *HopError naming the failing hop.
func (c *Chain) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("chain: network %q not supported", network)
	}
	if len(c.Hops) == 0 {
		return nil, ErrNoHops
	}
	first := c.Hops[0].Addr()
	conn, err := c.forward().DialContext(ctx, "tcp", first)
	if err != nil {
		return nil, &HopError{Index: 0, Addr: first, Err: err}
	}
	for i, h := range c.Hops {
		next := addr
		if i+1 < len(c.Hops) {
			next = c.Hops[i+1].Addr()
		}
		out, err := c.handshake(ctx, h, conn, next)
		if err != nil {
			conn.Close()
			if _, ok := errors.AsType[*ReplyError](err); ok {
				// Say what the hop failed to reach; never name the destination.
				what := "the destination"
				if next != addr {
					what = fmt.Sprintf("hop %d", i+2)
				}
				err = fmt.Errorf("reaching %s: %w", what, err)
			}
			return nil, &HopError{Index: i, Addr: h.Addr(), Err: err}
		}
		conn = out
	}
	return conn, nil
}

func (c *Chain) forward() Dialer {
	if c.Forward != nil {
		return c.Forward
	}
	t := c.ConnectTimeout
	if t <= 0 {
		t = DefaultHandshakeTimeout
	}
	return &net.Dialer{Timeout: t}
}

// handshake runs h.Connect under a deadline, bridging ctx to conn's
// deadline so a blocked read ends when ctx does, with no extra goroutine
// left behind; the deadline is cleared afterwards for the relay.
func (c *Chain) handshake(ctx context.Context, h Hop, conn net.Conn, next string) (net.Conn, error) {
	timeout := c.HandshakeTimeout
	if t, ok := h.(interface{ HandshakeTimeout() time.Duration }); ok {
		timeout = t.HandshakeTimeout()
	}
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	deadline, _ := hctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	interrupted := make(chan struct{})
	stop := context.AfterFunc(hctx, func() {
		conn.SetDeadline(time.Unix(1, 0))
		close(interrupted)
	})
	out, err := h.Connect(hctx, conn, next)
	if !stop() {
		<-interrupted // the deadline was moved to the past; wait so clearing it below wins
		if err == nil {
			err = hctx.Err()
		}
	}
	if err != nil {
		switch {
		case ctx.Err() != nil: // the caller gave up, e.g. its client left
			if !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("%w (%v)", ctx.Err(), err)
			}
		case hctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
			// Our deadline and hctx's timer fire together; either means
			// the hop was too slow, and says so the same way.
			err = fmt.Errorf("handshake timed out after %v: %w", timeout, context.DeadlineExceeded)
		}
		return nil, err
	}
	if err := out.SetDeadline(time.Time{}); err != nil {
		out.Close()
		return nil, err
	}
	return out, nil
}
