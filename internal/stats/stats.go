// Package stats is what a running veilchain knows about its own traffic:
// per listener, chain and hop position, connections open and in all,
// bytes each way, handshake latency and the last error; and each live
// connection. A Registry is built by cmd and handed to the front ends
// (beside their Dialer), which record into it; the control endpoint, the
// status page and the Prometheus metrics read it. Nothing here is
// package-level state.
//
// Privacy: a live connection's destination is kept to be shown on the
// local control endpoint and the local page only (Status.Connections).
// Counters and metrics are keyed by listener, chain and hop position,
// never by destination, user or client address, and error texts kept
// here are HopError texts, which never name the destination.
package stats

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veilchain/veilchain/chain"
)

// Buckets are the upper bounds of the handshake latency histograms.
var Buckets = [...]time.Duration{
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// Histogram counts durations in Buckets (and one more, above the last).
type Histogram struct {
	counts [len(Buckets) + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

// Observe counts d.
func (h *Histogram) Observe(d time.Duration) {
	i, _ := slices.BinarySearch(Buckets[:], d)
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// Counters are one listener's, chain's or hop position's.
type Counters struct {
	open, total, failed atomic.Int64
	up, down            atomic.Int64 // of connections that ended; live ones are added when read
	latency             Histogram

	mu      sync.Mutex
	lastErr string
	errAt   time.Time
}

func (c *Counters) setErr(text string, at time.Time) {
	c.mu.Lock()
	c.lastErr, c.errAt = text, at
	c.mu.Unlock()
}

type hopKey struct {
	chain    string
	position int // 1-based
}

// Registry keeps the counters and the live connections. Its zero value is
// ready; a nil *Registry records nothing, so front ends work without one.
type Registry struct {
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Chains, if set, returns the chains that run now (policy.Router's
	// ChainsNow), for Status to draw with their hops' health.
	Chains func() map[string]chain.Dialer

	mu        sync.Mutex
	listeners map[string]*Counters
	chains    map[string]*Counters
	hops      map[hopKey]*Counters
	live      map[*Conn]struct{}
	exits     map[string]ExitStatus // by chain name
	nextID    uint64
	started   time.Time
}

func (r *Registry) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Started records when the process started serving (Status.Since).
func (r *Registry) Started() {
	if r != nil {
		r.mu.Lock()
		r.started = r.now()
		r.mu.Unlock()
	}
}

func counters[K comparable](m *map[K]*Counters, k K) *Counters {
	if *m == nil {
		*m = map[K]*Counters{}
	}
	c := (*m)[k]
	if c == nil {
		c = &Counters{}
		(*m)[k] = c
	}
	return c
}

// Dial is one connection being dialled: what its Trace heard so far.
type Dial struct {
	r        *Registry
	listener string
	user     string
	dest     string
	start    time.Time

	mu    sync.Mutex
	chain string
	path  []string
}

// Dial starts accounting for a connection a front end is about to dial
// through its Dialer for a client of listener: dial with the context it
// returns, then call Failed or Connected. user and dest are kept only
// for the live connection's row (see the package comment).
func (r *Registry) Dial(ctx context.Context, listener, user, dest string) (context.Context, *Dial) {
	if r == nil {
		return ctx, nil
	}
	d := &Dial{r: r, listener: listener, user: user, dest: dest, start: r.now()}
	tr := &chain.Trace{
		Chain: func(name string) {
			d.mu.Lock()
			d.chain = name
			d.mu.Unlock()
		},
		Hop: func(i int, _ string, took time.Duration) {
			d.mu.Lock()
			name := d.chain
			d.mu.Unlock()
			r.mu.Lock()
			c := counters(&r.hops, hopKey{name, i + 1})
			r.mu.Unlock()
			c.latency.Observe(took)
		},
		Path: func(addrs []string) {
			d.mu.Lock()
			d.path = addrs
			d.mu.Unlock()
		},
	}
	return chain.WithTrace(ctx, tr), d
}

// Failed records a dial that failed with err: at the listener, at the
// chain, and at the hop position a chain.HopError names. Only the text
// of a HopError (which never names the destination) or of a policy
// refusal is kept; other errors are kept as their kind.
func (d *Dial) Failed(err error) {
	if d == nil {
		return
	}
	r, now := d.r, d.r.now()
	text := errorText(err)
	d.mu.Lock()
	name := d.chain
	d.mu.Unlock()
	r.mu.Lock()
	l := counters(&r.listeners, d.listener)
	var ch, hop *Counters
	if name != "" {
		ch = counters(&r.chains, name)
	}
	hopErr, isHop := errors.AsType[*chain.HopError](err)
	if name != "" && isHop {
		hop = counters(&r.hops, hopKey{name, hopErr.Index + 1})
	}
	r.mu.Unlock()
	for _, c := range []*Counters{l, ch, hop} {
		if c != nil {
			c.failed.Add(1)
			c.setErr(text, now)
		}
	}
}

// errorText is what may be kept of a dial's error.
func errorText(err error) string {
	var hop *chain.HopError
	switch {
	case errors.As(err, &hop):
		return hop.Error()
	case errors.Is(err, chain.ErrBlocked):
		return "refused by policy"
	case errors.Is(err, chain.ErrLoop):
		return chain.ErrLoop.Error()
	case errors.Is(err, context.Canceled):
		return "cancelled: the client left"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	}
	return "connect failed"
}

// Conn is a live connection.
type Conn struct {
	r        *Registry
	id       uint64
	listener string
	user     string
	dest     string
	chain    string
	path     []string
	start    time.Time
	counts   chain.Counts
	keys     []*Counters // listener, chain, each hop position
}

// Connected records a dial that succeeded, and returns the live
// connection: relay with its Relay context, then call Closed.
func (d *Dial) Connected() *Conn {
	if d == nil {
		return nil
	}
	r, now := d.r, d.r.now()
	d.mu.Lock()
	c := &Conn{r: r, listener: d.listener, user: d.user, dest: d.dest, chain: d.chain,
		path: d.path, start: now}
	d.mu.Unlock()
	r.mu.Lock()
	r.nextID++
	c.id = r.nextID
	c.keys = append(c.keys, counters(&r.listeners, c.listener))
	if c.chain != "" {
		c.keys = append(c.keys, counters(&r.chains, c.chain))
		for i := range c.path {
			c.keys = append(c.keys, counters(&r.hops, hopKey{c.chain, i + 1}))
		}
	}
	if r.live == nil {
		r.live = map[*Conn]struct{}{}
	}
	r.live[c] = struct{}{}
	r.mu.Unlock()
	took := now.Sub(d.start)
	for i, k := range c.keys {
		k.open.Add(1)
		k.total.Add(1)
		if i < 2 { // the listener's and the chain's: the whole dial
			k.latency.Observe(took)
		}
	}
	return c
}

// Relay returns ctx carrying the connection's live byte counts, for
// chain.StartRelay or chain.RelayIdle to add to.
func (c *Conn) Relay(ctx context.Context) context.Context {
	if c == nil {
		return ctx
	}
	return chain.WithCounts(ctx, &c.counts)
}

// Closed records the end of the connection, with the relay's byte counts.
func (c *Conn) Closed(up, down int64) {
	if c == nil {
		return
	}
	// Under the lock, with the delete: Bytes sees the connection's bytes
	// once, live or ended.
	c.r.mu.Lock()
	delete(c.r.live, c)
	for _, k := range c.keys {
		k.up.Add(up)
		k.down.Add(down)
		k.open.Add(-1)
	}
	c.r.mu.Unlock()
}

// Add counts n bytes of direction dir (0: from the client, 1: to it) of
// a connection not relayed by chain's relay.
func (c *Conn) Add(dir int, n int64) {
	if c != nil && n != 0 {
		c.counts[dir].Add(n)
	}
}

// Bytes are the connection's bytes so far, up and down.
func (c *Conn) Bytes() (up, down int64) {
	if c == nil {
		return 0, 0
	}
	return c.counts[0].Load(), c.counts[1].Load()
}
