package chain

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/veilchain/veilchain/internal/conns"
)

// DefaultHandshakeTimeout bounds each hop's handshake when Chain.HandshakeTimeout is zero.
const DefaultHandshakeTimeout = 10 * time.Second

// Chain is a Dialer that reaches addr through Hops, in order: it dials the
// first hop, then asks each hop to connect to the next one, and the last
// hop (the exit) to connect to addr. It never connects anywhere directly
// except to the first hop, and it never resolves addr. Mode chooses which
// hops a connection takes; a *Pool among the Hops contributes one member.
type Chain struct {
	Hops []Hop
	Mode Mode
	// Length is how many hops Random and RoundRobin take (default all).
	Length int
	// Health, if set, records failures and latencies; dynamic modes and
	// pools skip hops it counts dead.
	Health *Health
	// Forward reaches the first hop; nil means a net.Dialer with
	// ConnectTimeout, looking the first hop's name up with Resolver.
	Forward Dialer
	// Resolver looks up the first hop's name (the only name a chain ever
	// looks up here: the others go to the hop before them, and the
	// destination's to the exit); nil means the system's. A *net.Resolver
	// fits. Unused when Forward is set.
	Resolver Resolver
	// ConnectTimeout bounds the TCP connect to the first hop (default 10 s).
	ConnectTimeout time.Duration
	// HandshakeTimeout bounds each hop's handshake (default 10 s).
	HandshakeTimeout time.Duration
	// LoopGuard, if set, is told of each conn to the first hop while its
	// handshakes run, for front ends to refuse it should it reach one of
	// them (a first hop pointing back at this process).
	LoopGuard *LoopGuard
	// Prebuild is how many circuits to keep built ahead of time, each up
	// to the exit and past its auth, for one connection each (see
	// StartPrebuild); PrebuildIdle how long one may wait unused before it
	// is closed and replaced (default DefaultPrebuildIdle).
	Prebuild     int
	PrebuildIdle time.Duration

	next            atomic.Uint64 // round-robin position
	pre             atomic.Pointer[prebuilder]
	prebuildDormant time.Duration // for tests; 0: defaultPrebuildDormant
}

// DialContext implements Dialer. Errors are *HopError naming the failing
// hop. In every mode but Strict, a hop that fails is left out and the
// connection tried again without it, a bounded number of times. In every
// mode, a pool member that fails is left out and the pool's position
// taken by another member. Retries happen only while dialling, so before
// any of the client's bytes was sent.
func (c *Chain) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("chain: network %q not supported", network)
	}
	if len(c.Hops) == 0 {
		return nil, ErrNoHops
	}
	// One try, and one more for each hop that may be left out: any
	// pool member but the last of its pool, and in a mode but Strict any
	// other hop too.
	attempts := 1
	for _, h := range c.Hops {
		p, ok := h.(*Pool)
		switch {
		case ok && c.Mode != Strict:
			attempts += len(p.Members)
		case ok:
			attempts += len(p.Members) - 1
		case c.Mode != Strict:
			attempts++
		}
	}
	ctx = withDestination(ctx, addr)
	if conn, used, err := c.dialPrebuilt(ctx, addr); used {
		return conn, err
	}
	tr := TraceFrom(ctx)
	skip := map[Hop]bool{}
	var lastErr error
	for range attempts {
		hops, err := c.plan(skip)
		if err != nil {
			break
		}
		conn, failed, err := c.dialThrough(ctx, hops, addr)
		if err == nil {
			tr.path(hops)
			return conn, nil
		}
		c.configuredPosition(err, hops)
		lastErr = err
		if failed == nil || ctx.Err() != nil {
			break // the destination failed, or the caller gave up: no other hop helps
		}
		if c.Mode == Strict && !c.pooled(failed) {
			break // a strict chain takes every hop: without this one it cannot be built
		}
		skip[failed] = true
	}
	return nil, lastErr
}

// configuredPosition renumbers the hop an error names from its place in
// this dial's path (which a dynamic, random or round-robin mode draws) to
// its place in the chain as configured, where check and the config show
// it; a hop's address says which it is either way.
func (c *Chain) configuredPosition(err error, path []Hop) {
	he, ok := errors.AsType[*HopError](err)
	if !ok || he.Index < 0 || he.Index >= len(path) {
		return
	}
	h := path[he.Index]
	for i, pos := range c.Hops {
		if slices.Contains(membersOf(pos), h) {
			he.Index = i
			return
		}
	}
}

// dialThrough builds one connection through hops and, on failure, says
// which hop failed (nil when the exit could not reach the destination).
// A run of pipelined hops gets all its handshakes in one write, each
// behind the one before, and their replies are read after, in order; under
// an Optimistic ctx, a run that ends at the exit is not waited for at all.
func (c *Chain) dialThrough(ctx context.Context, hops []Hop, addr string) (net.Conn, Hop, error) {
	return c.dialPath(ctx, hops, len(hops), addr)
}

// dialPath is dialThrough through hops[:n] to addr, which is hops[n]'s
// address when n < len(hops): then a hop that cannot reach addr puts the
// blame on hops[n], as it would in a dial through all of hops. With a
// muxer among hops[:n], the last one hands out the stream (asking for the
// path to itself only when it needs a new connection) and the hops after
// it are reached through that stream.
func (c *Chain) dialPath(ctx context.Context, hops []Hop, n int, addr string) (net.Conn, Hop, error) {
	next := func(i int) string {
		if i+1 < n {
			return hops[i+1].Addr()
		}
		return addr
	}
	optimistic := isOptimistic(ctx) && n == len(hops)
	tr := TraceFrom(ctx) // late replies are read under a context of their own
	start := time.Now()
	var conn net.Conn
	untrack := func() {} // see LoopGuard: only a conn we dial to a first hop is tracked
	i := 0
	if m := lastMuxer(hops[:n]); m >= 0 {
		var failed Hop
		var err error
		if conn, failed, err = c.dialVia(ctx, hops, m, next(m)); err != nil {
			return nil, failed, err
		}
		start, i = time.Now(), m+1
	} else {
		first := hops[0].Addr() // addr itself when n == 0
		var err error
		if conn, err = c.forward().DialContext(ctx, "tcp", first); err != nil {
			if ctx.Err() != nil {
				return nil, nil, &HopError{Index: 0, Addr: first, Err: err} // the caller gave up: nobody to blame
			}
			c.failed(hops[0])
			return nil, hops[0], &HopError{Index: 0, Addr: first, Err: err}
		}
		untrack = c.LoopGuard.track(conn)
	}
	handedOff := false // to a pendingConn, which untracks when its replies are in
	defer func() {
		if !handedOff {
			untrack()
		}
	}()
	// A layered hop's replies may still be on their way when the next
	// hop's handshake starts; if they fail, that is what the dial returns,
	// however the next handshake then fails.
	var late struct {
		failed Hop
		err    error
	}
	fail := func(k int, err error) (net.Conn, Hop, error) {
		conn.Close()
		if late.err != nil {
			return nil, late.failed, late.err
		}
		failed, err := c.failure(ctx, hops, k, err)
		return nil, failed, err
	}
	for i < n {
		h := hops[i]
		run := pipelinedRun(hops[i:n])
		if l, ok := h.(layered); ok && l.layered() && (i+1 < n || optimistic) {
			// Its TLS handshake takes a round trip; its SOCKS flight
			// then goes out, and the next hop's TLS hello right behind
			// it, without waiting for the replies: they are read on the
			// first Read, which the next hello's answer brings.
			out, err := c.handshake(ctx, h, conn, func(hctx context.Context) (net.Conn, error) {
				return l.connectDeferred(hctx, conn, next(i))
			})
			if err != nil {
				return fail(i, err)
			}
			rctx, cancel := ctx, context.CancelFunc(func() {})
			if i+1 == n {
				// The dial is over when the replies come: as for a
				// pipelined exit, only the hop's timeout bounds them.
				rctx, cancel = context.WithCancel(context.Background())
			}
			p := &pendingConn{Conn: out, cancel: cancel}
			k, begin := i, start
			p.finish = func() error {
				defer cancel()
				if _, err := c.handshake(rctx, h, out, func(context.Context) (net.Conn, error) { return out, l.readReplies(out) }); err != nil {
					late.failed, late.err = c.failure(rctx, hops, k, err)
					return late.err
				}
				c.passed(tr, k, h, time.Since(begin))
				return nil
			}
			if i+1 == n {
				return p, nil, nil
			}
			start = time.Now()
			conn = p
			i++
			continue
		}
		if run == 0 {
			out, err := c.handshake(ctx, h, conn, func(hctx context.Context) (net.Conn, error) {
				return h.Connect(hctx, conn, next(i))
			})
			if err != nil {
				return fail(i, err)
			}
			c.passed(tr, i, h, time.Since(start))
			start = time.Now()
			conn = out
			i++
			continue
		}
		var batch []byte
		for k := i; k < i+run; k++ {
			b, err := pipelinedOf(hops[k]).handshakeBytes(ctx, next(k))
			if err != nil {
				return fail(k, err)
			}
			batch = append(batch, b...)
		}
		if _, err := c.handshake(ctx, h, conn, func(context.Context) (net.Conn, error) {
			_, err := conn.Write(batch)
			return conn, err
		}); err != nil {
			return fail(i, err)
		}
		if i+run == n && optimistic {
			// The dial is over: only the hops' own timeouts bound the
			// replies now, and closing the conn ends the wait, as a
			// cancellation that blames no hop.
			handedOff = true
			return latePending(conn, untrack, func(rctx context.Context) error {
				_, err := c.readReplies(rctx, tr, hops, i, run, conn, start)
				return err
			}), nil, nil
		}
		if failed, err := c.readReplies(ctx, tr, hops, i, run, conn, start); err != nil {
			conn.Close()
			if late.err != nil {
				return nil, late.failed, late.err
			}
			return nil, failed, err
		}
		start = time.Now()
		i += run
	}
	return conn, nil, nil
}

// muxer is a hop that hands out streams over connections of its own (an
// SSH connection carries many channels). reach builds a new connection to
// the hop through the hops before it; the muxer calls it only when it has
// no connection to reuse, and only before it returns.
type muxer interface {
	DialVia(ctx context.Context, timeout time.Duration, reach func(context.Context) (net.Conn, error), addr string) (net.Conn, error)
}

// lastMuxer is the index of the last muxer in hops, or -1.
func lastMuxer(hops []Hop) int {
	for m := len(hops) - 1; m >= 0; m-- {
		if _, ok := hops[m].(muxer); ok {
			return m
		}
	}
	return -1
}

// dialVia asks the muxer hops[m] for a stream to addr. A failure to reach
// the muxer keeps the blame and error of the dial through the hops before
// it; a failure of the muxer itself is blamed as any hop's handshake.
func (c *Chain) dialVia(ctx context.Context, hops []Hop, m int, addr string) (net.Conn, Hop, error) {
	h := hops[m]
	var reached struct {
		failed Hop
		err    error
	}
	reach := func(ctx context.Context) (net.Conn, error) {
		// The connection outlives this dial: nothing of it waits for a
		// reply on a later Read.
		ctx = context.WithValue(ctx, optimisticKey{}, false)
		conn, failed, err := c.dialPath(ctx, hops, m, h.Addr())
		reached.failed, reached.err = failed, err
		return conn, err
	}
	start := time.Now()
	conn, err := h.(muxer).DialVia(ctx, c.timeout(h), reach, addr)
	switch {
	case err == nil:
		c.passed(TraceFrom(ctx), m, h, time.Since(start))
		return conn, nil, nil
	case reached.err != nil:
		return nil, reached.failed, reached.err
	}
	if _, ok := errors.AsType[*HopError](err); ok {
		// Another dial's new connection, which this one waited for,
		// failed on the way: that dial has put the blame.
		return nil, nil, err
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	failed, err := c.failure(ctx, hops, m, err)
	return nil, failed, err
}

// readReplies reads the replies of the run of pipelined hops[i:i+run],
// in order, and says which hop to blame when one fails.
func (c *Chain) readReplies(ctx context.Context, tr *Trace, hops []Hop, i, run int, conn net.Conn, start time.Time) (Hop, error) {
	for k := i; k < i+run; k++ {
		if _, err := c.handshake(ctx, hops[k], conn, func(context.Context) (net.Conn, error) {
			return conn, pipelinedOf(hops[k]).readReplies(conn)
		}); err != nil {
			return c.failure(ctx, hops, k, err)
		}
		c.passed(tr, k, hops[k], time.Since(start))
		start = time.Now()
	}
	return nil, nil
}

// failure turns hop i's handshake error into the chain's error, and says
// which hop to blame: the hop itself, the one after it when it could not
// reach that one, or none.
func (c *Chain) failure(ctx context.Context, hops []Hop, i int, err error) (Hop, error) {
	h := hops[i]
	failed := h
	if errors.Is(err, ErrBadAddress) {
		// The hop type cannot carry this address (an IPv6 literal over
		// socks4): no hop is at fault, and none will do better.
		return nil, &HopError{Index: i, Addr: h.Addr(), Err: err}
	}
	if _, ok := errors.AsType[*ReplyError](err); ok {
		// The hop works but could not reach the next one (which is the one
		// to blame) or the destination (nobody's).
		what := "the destination"
		failed = nil
		if i+1 < len(hops) {
			what = fmt.Sprintf("hop %d", i+2)
			failed = hops[i+1]
		}
		err = fmt.Errorf("reaching %s: %w", what, err)
	}
	if failed != nil && ctx.Err() == nil {
		c.failed(failed)
	}
	return failed, &HopError{Index: i, Addr: h.Addr(), Err: err, Destination: failed == nil && i+1 == len(hops)}
}

func (c *Chain) forward() Dialer {
	if c.Forward != nil {
		return c.Forward
	}
	t := c.ConnectTimeout
	if t <= 0 {
		t = DefaultHandshakeTimeout
	}
	// Keepalive only for a first hop off this machine (see conns.KeepAliveOffMachine).
	d := &net.Dialer{Timeout: t, KeepAlive: -1}
	return DialerFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		var err error
		if c.Resolver == nil {
			conn, err = d.DialContext(ctx, network, addr)
		} else {
			conn, err = dialResolved(ctx, d, c.Resolver, network, addr)
		}
		if err == nil {
			conns.KeepAliveOffMachine(conn)
		}
		return conn, err
	})
}

// Resolver looks up a host name; *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// dialResolved dials addr, looking its name up with r, and tries the
// addresses in order within d's one timeout.
func dialResolved(ctx context.Context, d *net.Dialer, r Resolver, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return d.DialContext(ctx, network, addr)
	}
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	ipNet := map[string]string{"tcp4": "ip4", "tcp6": "ip6"}[network]
	ips, err := r.LookupNetIP(ctx, cmp.Or(ipNet, "ip"), host)
	if err == nil && len(ips) == 0 {
		err = errors.New("no address")
	}
	if err != nil {
		return nil, fmt.Errorf("looking up hop %s: %w", host, err)
	}
	for _, ip := range ips {
		var conn net.Conn
		if conn, err = d.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port)); err == nil {
			return conn, nil
		}
	}
	return nil, err
}

// timeout is h's handshake timeout: its own, the chain's, or the default.
func (c *Chain) timeout(h Hop) time.Duration {
	timeout := c.HandshakeTimeout
	if t, ok := h.(interface{ HandshakeTimeout() time.Duration }); ok && t.HandshakeTimeout() > 0 {
		timeout = t.HandshakeTimeout()
	}
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	return timeout
}

// Close lets go of what the hops keep open between dials (an SSH hop's
// connections, each once its last stream ends; prebuilt circuits not yet
// taken, at once); live streams go on. A reload closes the chains it
// replaces.
func (c *Chain) Close() error {
	c.stopPrebuild()
	var errs []error
	for _, pos := range c.Hops {
		members := membersOf(pos)
		for _, h := range members {
			if cl, ok := h.(io.Closer); ok {
				errs = append(errs, cl.Close())
			}
		}
	}
	return errors.Join(errs...)
}

// handshake runs one step of h's handshake under h's deadline, bridging
// ctx to conn's deadline so a blocked read ends when ctx does, with no
// extra goroutine left behind; the deadline is cleared afterwards for the
// relay.
func (c *Chain) handshake(ctx context.Context, h Hop, conn net.Conn, step func(context.Context) (net.Conn, error)) (net.Conn, error) {
	timeout := c.timeout(h)
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
	out, err := step(hctx)
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
			hint := ""
			if Security(h) != "" {
				// The gate of a serve answers nothing to a client it does
				// not let through, not even a refusal: a prober learns
				// nothing, and a wrong password looks like a slow hop.
				hint = " (a veilchain serve does not answer wrong credentials: check the user and password)"
			}
			err = fmt.Errorf("handshake timed out after %v%s: %w", timeout, hint, context.DeadlineExceeded)
		}
		return nil, err
	}
	if err := out.SetDeadline(time.Time{}); err != nil {
		out.Close()
		return nil, err
	}
	return out, nil
}
