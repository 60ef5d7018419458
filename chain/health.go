package chain

import (
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Health remembers, per hop address, recent failures and handshake
// latency. A failed hop counts as dead for a backoff that doubles with
// each failure in a row (with jitter), then gets tried again: dead hops
// come back when they work. The zero value is ready; a nil *Health counts
// every hop alive.
type Health struct {
	// Backoff is the first dead period (default 5 s); MaxBackoff caps it
	// (default 5 min).
	Backoff, MaxBackoff time.Duration
	// Logger, if set, hears at warn level when a hop is found dead and
	// when it works again, with the hop's position and address; later
	// failures of a dead hop go to debug. Health never sees a destination.
	Logger *slog.Logger

	mu   sync.Mutex
	hops map[string]*hopHealth
}

type hopHealth struct {
	fails     int
	deadSince time.Time // the first failure in a row
	deadUntil time.Time
	latency   time.Duration // moving average of handshake times
}

func (h *Health) get(addr string) *hopHealth {
	if h.hops == nil {
		h.hops = map[string]*hopHealth{}
	}
	s := h.hops[addr]
	if s == nil {
		s = &hopHealth{}
		h.hops[addr] = s
	}
	return s
}

// Alive reports whether hop is not in a dead period.
func (h *Health) Alive(hop Hop) bool {
	if h == nil {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return !time.Now().Before(h.get(hop.Addr()).deadUntil)
}

// Failed starts or lengthens hop's dead period.
func (h *Health) Failed(hop Hop) { h.failed(hop, nil) }

// Succeeded ends hop's dead period and records a handshake latency.
func (h *Health) Succeeded(hop Hop, latency time.Duration) { h.succeeded(hop, latency, nil) }

// failed is Failed; where, if set, names hop's place in its chain for the log.
func (h *Health) failed(hop Hop, where func(Hop) []any) {
	if h == nil {
		return
	}
	base, ceiling := h.Backoff, h.MaxBackoff
	if base <= 0 {
		base = 5 * time.Second
	}
	if ceiling <= 0 {
		ceiling = 5 * time.Minute
	}
	h.mu.Lock()
	s := h.get(hop.Addr())
	d := min(base<<min(s.fails, 16), ceiling)
	d += time.Duration(rand.Int64N(int64(d)/4 + 1)) // jitter: hops that failed together come back apart
	now := time.Now()
	if s.fails == 0 {
		s.deadSince = now
	}
	s.fails++
	s.deadUntil = now.Add(d)
	fails := s.fails
	h.mu.Unlock()
	if h.Logger == nil {
		return
	}
	attrs := append(h.hopAttrs(hop, where), "retry_in", d.Round(time.Millisecond))
	if fails == 1 {
		h.Logger.Warn("hop dead", attrs...)
	} else {
		h.Logger.Debug("hop still dead", append(attrs, "fails", fails)...)
	}
}

// succeeded is Succeeded; where is as for failed.
func (h *Health) succeeded(hop Hop, latency time.Duration, where func(Hop) []any) {
	if h == nil {
		return
	}
	h.mu.Lock()
	s := h.get(hop.Addr())
	wasDead, since := s.fails > 0, s.deadSince
	s.fails, s.deadSince, s.deadUntil = 0, time.Time{}, time.Time{}
	if s.latency == 0 {
		s.latency = latency
	} else {
		s.latency = (3*s.latency + latency) / 4
	}
	h.mu.Unlock()
	if wasDead && h.Logger != nil {
		h.Logger.Warn("hop back alive", append(h.hopAttrs(hop, where), "dead_for", time.Since(since).Round(time.Millisecond))...)
	}
}

func (h *Health) hopAttrs(hop Hop, where func(Hop) []any) []any {
	var attrs []any
	if where != nil {
		attrs = where(hop)
	}
	return append(attrs, "hop_addr", hop.Addr())
}

// failed and succeeded tell c's Health about one of its hops.
func (c *Chain) failed(hop Hop) { c.Health.failed(hop, c.where) }

func (c *Chain) succeeded(hop Hop, latency time.Duration) {
	c.Health.succeeded(hop, latency, c.where)
}

// passed is succeeded for hop i of a dial's path, told to its Trace too.
func (c *Chain) passed(tr *Trace, i int, hop Hop, took time.Duration) {
	c.succeeded(hop, took)
	tr.hop(i, hop, took)
}

// where names hop's place in c for a log line: its 1-based position, and
// its 1-based place in the pool there if it is a pool member.
func (c *Chain) where(hop Hop) []any {
	for i, pos := range c.Hops {
		if pos == hop {
			return []any{"hop", i + 1}
		}
		if p, ok := pos.(*Pool); ok {
			if j := slices.Index(p.Members, hop); j >= 0 {
				return []any{"hop", i + 1, "member", j + 1}
			}
		}
	}
	return nil
}

// Latency is hop's average handshake time (0 when never measured).
func (h *Health) Latency(hop Hop) time.Duration {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.get(hop.Addr()).latency
}

// HopState is what Health knows of one hop now.
type HopState struct {
	// Alive: not in a dead period (a hop whose period ended is tried
	// again, and is alive though Fails is not 0 yet).
	Alive bool
	// Fails is how many times in a row it failed (0 once it works).
	Fails int
	// Latency is its average handshake time (0 when never measured).
	Latency time.Duration
}

// State is hop's HopState; a nil *Health knows nothing, and counts it alive.
func (h *Health) State(hop Hop) HopState {
	if h == nil {
		return HopState{Alive: true}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.get(hop.Addr())
	return HopState{Alive: !time.Now().Before(s.deadUntil), Fails: s.fails, Latency: s.latency}
}
