package chain

import (
	"math/rand/v2"
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

	mu   sync.Mutex
	hops map[string]*hopHealth
}

type hopHealth struct {
	fails     int
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
func (h *Health) Failed(hop Hop) {
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
	defer h.mu.Unlock()
	s := h.get(hop.Addr())
	d := min(base<<min(s.fails, 16), ceiling)
	d += time.Duration(rand.Int64N(int64(d)/4 + 1)) // jitter: hops that failed together come back apart
	s.fails++
	s.deadUntil = time.Now().Add(d)
}

// Succeeded ends hop's dead period and records a handshake latency.
func (h *Health) Succeeded(hop Hop, latency time.Duration) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.get(hop.Addr())
	s.fails, s.deadUntil = 0, time.Time{}
	if s.latency == 0 {
		s.latency = latency
	} else {
		s.latency = (3*s.latency + latency) / 4
	}
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
