package chain

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veilchain/veilchain/internal/conns"
)

// Circuits built ahead of time. Over real links most of a new
// connection's wait is the TCP and proxy handshakes to hops that do not
// depend on its destination. With Chain.Prebuild set, a chain keeps up to
// that many connections carried through every hop up to the exit and
// past the exit's greeting and auth, so that a new connection only sends
// the exit its request. Each circuit serves exactly one connection. What
// a hop sees: idle connections opened ahead of use, nothing more about
// the destination than without them.

// DefaultPrebuildIdle is how long a prebuilt circuit may wait unused when
// Chain.PrebuildIdle is zero: under the negotiation timeouts of common
// SOCKS servers (dante's is 30 s), so that a hop does not close it first.
const DefaultPrebuildIdle = 25 * time.Second

// defaultPrebuildDormant: a chain nobody dialled through for this long stops
// replacing its expired circuits (a desktop left alone should not keep
// opening connections), until the next dial.
const defaultPrebuildDormant = 10 * time.Minute

// maxCircuitPools bounds the isolation keys circuits are kept for.
const maxCircuitPools = 32

// preparable is an exit that can be taken ahead of time as far as it goes
// without a destination.
type preparable interface {
	// prepare runs what of the handshake names no destination (TLS to
	// the hop, greeting, auth) on conn, which reaches the hop, and
	// returns the conn the request goes on.
	prepare(ctx context.Context, conn net.Conn) (net.Conn, error)
	// request asks a prepared conn to connect to addr, in lock step.
	request(ctx context.Context, conn net.Conn, addr string) (net.Conn, error)
	// requestBytes is that request for a dial that does not wait for
	// its reply; ok is false when nothing may follow the request unread
	// (the hop does not pipeline).
	requestBytes(addr string) (b []byte, ok bool, err error)
	// readRequestReply reads and checks the reply to requestBytes, exactly.
	readRequestReply(conn net.Conn) error
}

// circuit is a conn that has reached the exit along hops, prepared.
type circuit struct {
	conn    net.Conn
	hops    []Hop
	built   time.Time // wall clock only: a suspended laptop's circuits age too
	untrack func()    // the LoopGuard's, until the request is answered
}

// close closes a circuit no connection will take.
func (c *circuit) close() {
	c.untrack()
	c.conn.Close()
}

// circuitPool holds the circuits for one isolation key.
type circuitPool struct {
	origin   Origin // what circuits for this key are built under
	ready    []*circuit
	building int
	lastUse  time.Time
	failures int
	retryAt  time.Time
}

// prebuilder keeps a Chain's circuits: one goroutine (run) owns the
// building, expiry and replacement; dials take circuits under mu.
type prebuilder struct {
	c       *Chain
	n       int
	idle    time.Duration
	dormant time.Duration
	ctx     context.Context
	cancel  context.CancelFunc
	wake    chan struct{}
	done    chan struct{}
	builds  sync.WaitGroup
	warned  atomic.Bool // closedEarly said so

	mu    sync.Mutex
	pools map[string]*circuitPool
}

// StartPrebuild starts keeping c.Prebuild circuits ready, until ctx ends
// or c is closed. It refuses a chain whose circuits could not serve any
// connection: one with a hop that isolates by destination (unknown until
// a connection comes), or a strict chain whose exit is an SSH hop (which
// keeps its connection open already). Connections that find no circuit
// ready are dialled as usual.
func (c *Chain) StartPrebuild(ctx context.Context) error {
	if c.Prebuild <= 0 {
		return nil
	}
	for _, pos := range c.Hops {
		for _, h := range membersOf(pos) {
			if isolationOf(h) == IsolateDestination {
				return fmt.Errorf("prebuild: hop %s isolates by destination, which no circuit built ahead can know", h.Addr())
			}
		}
	}
	exits := c.Hops // in any mode but strict, any hop may be drawn as the exit
	if c.Mode == Strict && len(c.Hops) > 0 {
		exits = c.Hops[len(c.Hops)-1:]
	}
	for _, pos := range exits {
		for _, h := range membersOf(pos) {
			if _, ok := h.(preparable); !ok {
				// An HTTP or SOCKS4 exit takes nothing before its request,
				// and a hop may drop (or, a serve's gate, answer as a web
				// server) a connection that sends nothing for a while; an
				// SSH exit keeps its connection open already.
				return fmt.Errorf("prebuild: circuits are built ahead only to socks5:// and socks5s:// exits, and %s could be the exit", h.Addr())
			}
		}
	}
	idle := c.PrebuildIdle
	if idle <= 0 {
		idle = DefaultPrebuildIdle
	}
	p := &prebuilder{c: c, n: c.Prebuild, idle: idle, dormant: cmp.Or(c.prebuildDormant, defaultPrebuildDormant),
		wake: make(chan struct{}, 1), done: make(chan struct{}), pools: map[string]*circuitPool{}}
	if key, _ := c.circuitKey(ctx); key == "" {
		// Circuits for everyone: start building them now. With hops that
		// isolate by listener or user, each key's circuits are built
		// once a connection of that key has come.
		p.pools[""] = &circuitPool{lastUse: time.Now()}
	}
	p.ctx, p.cancel = context.WithCancel(ctx)
	if !c.pre.CompareAndSwap(nil, p) {
		p.cancel()
		return errors.New("prebuild: already started")
	}
	go p.run()
	return nil
}

// Prebuilt is how many circuits c has ready.
func (c *Chain) Prebuilt() int {
	p := c.pre.Load()
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, pool := range p.pools {
		n += len(pool.ready)
	}
	return n
}

// stopPrebuild ends the prebuilder, closing its unused circuits.
func (c *Chain) stopPrebuild() {
	if p := c.pre.Load(); p != nil {
		p.cancel()
		<-p.done
	}
}

// run builds circuits up to n for every pool in use, closes those that
// waited longer than idle, and retries failed builds with a growing delay.
func (p *prebuilder) run() {
	defer close(p.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-p.ctx.Done():
			p.builds.Wait()
			var unused []*circuit
			p.mu.Lock()
			for _, pool := range p.pools {
				unused = append(unused, pool.ready...)
				pool.ready = nil
			}
			p.mu.Unlock()
			closeCircuits(unused) // a TLS close writes: not under mu
			return
		case <-p.wake:
		case <-timer.C:
		}
		timer.Reset(p.tend(time.Now()))
	}
}

// tend does what is due at now and says how long until something else is.
func (p *prebuilder) tend(now time.Time) time.Duration {
	now = now.Round(0) // see circuit.built
	p.mu.Lock()
	defer p.mu.Unlock()
	next := now.Add(p.idle)
	var expired []*circuit
	for key, pool := range p.pools {
		live := pool.ready[:0]
		for _, circ := range pool.ready {
			if now.Sub(circ.built) >= p.idle {
				expired = append(expired, circ)
				continue
			}
			live = append(live, circ)
			next = earliest(next, circ.built.Add(p.idle))
		}
		clear(pool.ready[len(live):])
		pool.ready = live
		if now.Sub(pool.lastUse) >= p.dormant {
			if len(pool.ready) == 0 && pool.building == 0 {
				delete(p.pools, key)
			}
			continue
		}
		if now.Before(pool.retryAt) {
			next = earliest(next, pool.retryAt)
			continue
		}
		for len(pool.ready)+pool.building < p.n {
			pool.building++
			p.builds.Add(1)
			go p.build(pool)
			if pool.failures > 0 {
				break // one try at a time while the chain fails
			}
		}
	}
	if len(expired) > 0 {
		// A TLS close writes: nothing under mu waits for it. Shutdown
		// waits for it with the builds.
		p.builds.Go(func() { closeCircuits(expired) })
	}
	return time.Until(next)
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// build makes one circuit for pool.
func (p *prebuilder) build(pool *circuitPool) {
	defer p.builds.Done()
	circ, err := p.c.buildCircuit(WithOrigin(p.ctx, pool.origin))
	p.mu.Lock()
	pool.building--
	switch {
	case err != nil:
		pool.failures++
		pool.retryAt = time.Now().Add(min(30*time.Second, 250*time.Millisecond<<min(pool.failures, 7)))
	case p.ctx.Err() == nil:
		pool.failures = 0
		pool.ready = append(pool.ready, circ)
		circ = nil
	}
	p.mu.Unlock()
	if circ != nil {
		circ.close() // built as the prebuilder stopped
	}
	p.signal()
}

// closedEarly hears of a circuit found closed after waiting age: a hop
// with a shorter wait for a request than idle. Said once, with the age.
func (p *prebuilder) closedEarly(age time.Duration) {
	if h := p.c.Health; h != nil && h.Logger != nil && p.warned.CompareAndSwap(false, true) {
		h.Logger.Warn("a hop closed a circuit built ahead before it was used; set prebuild_idle below its wait for a request",
			"waited", age.Round(time.Millisecond), "prebuild_idle", p.idle)
	}
}

func (p *prebuilder) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func closeCircuits(cs []*circuit) {
	for _, c := range cs {
		c.close()
	}
}

// take hands out the oldest ready circuit for ctx's isolation key, or
// nil, and has the pool refilled.
func (p *prebuilder) take(ctx context.Context) *circuit {
	key, ok := p.c.circuitKey(ctx)
	if !ok {
		return nil
	}
	defer p.signal()
	var expired []*circuit
	defer func() { closeCircuits(expired) }() // after mu: a TLS close writes
	p.mu.Lock()
	defer p.mu.Unlock()
	pool := p.pools[key]
	if pool == nil {
		if len(p.pools) >= maxCircuitPools {
			return nil
		}
		pool = &circuitPool{origin: originFrom(ctx)}
		p.pools[key] = pool
	}
	pool.lastUse = time.Now()
	for len(pool.ready) > 0 {
		circ := pool.ready[0]
		pool.ready[0] = nil
		pool.ready = pool.ready[1:]
		// The sweep may not have run for a while (a machine that slept).
		if time.Now().Round(0).Sub(circ.built) < p.idle {
			return circ
		}
		expired = append(expired, circ)
	}
	return nil
}

// circuitKey says which circuits ctx may take: those built for the same
// isolation keys at every hop that isolates by listener or user. A hop
// isolating each connection gets fresh credentials per circuit, which
// serves one connection anyway.
func (c *Chain) circuitKey(ctx context.Context) (string, bool) {
	var key strings.Builder
	for _, pos := range c.Hops {
		for _, h := range membersOf(pos) {
			switch i := isolationOf(h); i {
			case IsolateNone, IsolateConnection:
			case IsolateDestination:
				return "", false
			default:
				k, _ := isolationKey(ctx, i)
				key.WriteString(k)
				key.WriteByte(0)
			}
		}
	}
	return key.String(), true
}

func isolationOf(h Hop) Isolation {
	switch h := h.(type) {
	case *SOCKS5:
		return h.Isolate
	case *SSH:
		return h.Isolate
	}
	return IsolateNone
}

// buildCircuit draws a path as a dial would and takes it up to the exit,
// prepared.
func (c *Chain) buildCircuit(ctx context.Context) (*circuit, error) {
	hops, err := c.plan(map[Hop]bool{})
	if err != nil {
		return nil, err
	}
	k := len(hops) - 1
	exit, ok := hops[k].(preparable)
	if !ok {
		return nil, fmt.Errorf("prebuild: the exit %s cannot be prepared", hops[k].Addr())
	}
	conn, _, err := c.dialPath(ctx, hops, k, hops[k].Addr())
	if err != nil {
		return nil, err
	}
	// A first hop that points back at this process must still be found
	// out when the request comes, which may be long after the dial
	// (dialPath tracked the conn only while its handshakes ran).
	untrack := c.LoopGuard.track(rawConn(conn))
	start := time.Now()
	out, err := c.handshake(ctx, hops[k], conn, func(hctx context.Context) (net.Conn, error) {
		return exit.prepare(hctx, conn)
	})
	if err != nil {
		untrack()
		conn.Close()
		_, err = c.failure(ctx, hops, k, err)
		return nil, err
	}
	c.succeeded(hops[k], time.Since(start))
	return &circuit{conn: out, hops: hops, built: time.Now().Round(0), untrack: untrack}, nil
}

// dialPrebuilt dials addr on a prebuilt circuit. used is false when there
// was none to take, or the ones taken had broken while they waited, or a
// hop on the way failed the request: then nothing of the client's was
// sent, and the caller dials as usual (leaving out a failed hop where its
// mode can). An answer from the exit about the destination is final.
func (c *Chain) dialPrebuilt(ctx context.Context, addr string) (conn net.Conn, used bool, err error) {
	p := c.pre.Load()
	if p == nil {
		return nil, false, nil
	}
	for range 3 {
		circ := p.take(ctx)
		if circ == nil {
			return nil, false, nil
		}
		if !circuitAlive(circ.conn) {
			circ.conn.Close()
			p.closedEarly(time.Since(circ.built))
			continue
		}
		conn, err := c.finishCircuit(ctx, circ, addr)
		switch {
		case err == nil || ctx.Err() != nil:
			return conn, true, err
		case brokenCircuit(err):
			p.closedEarly(time.Since(circ.built))
			continue
		}
		if he, ok := errors.AsType[*HopError](err); ok && he.Destination {
			return nil, true, err
		}
		return nil, false, nil
	}
	return nil, false, nil
}

// finishCircuit sends circ's exit the request for addr. Under an
// Optimistic ctx, and when the exit lets bytes follow its request, the
// reply is read on the conn's first Read (see pendingConn).
func (c *Chain) finishCircuit(ctx context.Context, circ *circuit, addr string) (net.Conn, error) {
	hops, k := circ.hops, len(circ.hops)-1
	exit, h := hops[k].(preparable), hops[k]
	tr := TraceFrom(ctx)
	start := time.Now()
	blame := func(ctx context.Context, err error) error {
		circ.close()
		if brokenCircuit(err) && ctx.Err() == nil {
			return err // not the exit's fault: it closed a circuit, or something on the way did
		}
		_, err = c.failure(ctx, hops, k, err)
		c.configuredPosition(err, hops)
		return err
	}
	if isOptimistic(ctx) {
		b, ok, err := exit.requestBytes(addr)
		if err != nil {
			return nil, blame(ctx, err)
		}
		if ok {
			if _, err := c.handshake(ctx, h, circ.conn, func(context.Context) (net.Conn, error) {
				_, err := circ.conn.Write(b)
				return circ.conn, err
			}); err != nil {
				return nil, blame(ctx, err)
			}
			pc := latePending(circ.conn, circ.untrack, func(rctx context.Context) error {
				if _, err := c.handshake(rctx, h, circ.conn, func(context.Context) (net.Conn, error) {
					return circ.conn, exit.readRequestReply(circ.conn)
				}); err != nil {
					_, err = c.failure(rctx, hops, k, err)
					c.configuredPosition(err, hops)
					return err
				}
				c.passed(tr, k, h, time.Since(start))
				return nil
			})
			tr.path(hops)
			return pc, nil
		}
	}
	out, err := c.handshake(ctx, h, circ.conn, func(hctx context.Context) (net.Conn, error) {
		return exit.request(hctx, circ.conn, addr)
	})
	if err != nil {
		return nil, blame(ctx, err)
	}
	circ.untrack()
	c.passed(tr, k, h, time.Since(start))
	tr.path(hops)
	return out, nil
}

// brokenCircuit reports whether err is a circuit ending under a request,
// rather than a hop answering it.
func brokenCircuit(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	for _, e := range connectionLost {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// circuitAlive reports whether the socket under conn has not been closed
// by its peer, nor been sent anything, while it waited: a prepared
// circuit expects nothing until its request. Where there is no peeking,
// it says yes, and a closed circuit shows when its request fails.
func circuitAlive(conn net.Conn) bool { return conns.Quiet(rawConn(conn)) }

// rawConn is the socket under conn's layers (*tls.Conn, *pendingConn).
func rawConn(conn net.Conn) net.Conn {
	for {
		c, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			return conn
		}
		conn = c.NetConn()
	}
}
