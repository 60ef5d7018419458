package stats

import (
	"context"
	"sync"
	"time"
)

// Bytes are all bytes relayed so far, up and down: the ended
// connections' and the live ones' so far. It reads under the Registry's
// lock, which Closed holds while it moves a connection's bytes from the
// live set to the counters, so no connection is counted twice or missed.
func (r *Registry) Bytes() (up, down int64) {
	if r == nil {
		return 0, 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.listeners { // every connection has one listener
		up += c.up.Load()
		down += c.down.Load()
	}
	for c := range r.live {
		up += c.counts[0].Load()
		down += c.counts[1].Load()
	}
	return up, down
}

// Sample is the bytes relayed in one step, up and down, ending At.
type Sample struct {
	At       time.Time
	Up, Down int64
}

// Throughput keeps a ring of the bytes relayed per step over the last
// Len steps, for the status page's graph. Its owner runs Run (one
// goroutine) for as long as the graph is shown, or calls Add itself.
type Throughput struct {
	// Step is the time between samples (0: a second).
	Step time.Duration
	// Len is how many samples are kept (0: 300, five minutes of seconds).
	Len int

	mu    sync.Mutex
	ring  []Sample
	next  int // where the next sample goes
	full  bool
	last  [2]int64
	begun bool
}

// Interval is Step, or its default.
func (t *Throughput) Interval() time.Duration {
	if t.Step > 0 {
		return t.Step
	}
	return time.Second
}

// Slots is Len, or its default.
func (t *Throughput) Slots() int {
	if t.Len > 0 {
		return t.Len
	}
	return 300
}

// Add records that the totals (Registry.Bytes) were up and down at at:
// the first call sets the baseline; each later one keeps a sample of
// what was relayed since the call before.
func (t *Throughput) Add(at time.Time, up, down int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ring == nil {
		t.ring = make([]Sample, t.Slots())
	}
	prev := t.last
	t.last = [2]int64{up, down}
	if !t.begun {
		t.begun = true
		return
	}
	t.ring[t.next] = Sample{At: at, Up: max(up-prev[0], 0), Down: max(down-prev[1], 0)}
	t.next = (t.next + 1) % len(t.ring)
	t.full = t.full || t.next == 0
}

// Samples are the kept samples, oldest first.
func (t *Throughput) Samples() []Sample {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.full {
		return append(append([]Sample(nil), t.ring[t.next:]...), t.ring[:t.next]...)
	}
	return append([]Sample(nil), t.ring[:t.next]...)
}

// Run samples r's totals every Step, on r's clock, until ctx ends.
func (t *Throughput) Run(ctx context.Context, r *Registry) {
	now := time.Now
	if r != nil {
		now = r.now
	}
	tick := time.NewTicker(t.Interval())
	defer tick.Stop()
	up, down := r.Bytes()
	t.Add(now(), up, down)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			up, down := r.Bytes()
			t.Add(now(), up, down)
		}
	}
}
