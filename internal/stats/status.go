package stats

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/veilchain/veilchain/chain"
)

// Version is Status's format version; it changes when a field changes
// meaning or goes away (new fields may be added within a version).
const Version = 1

// Status is the state of a running veilchain: what GET /v1/status
// answers, and what the status page and `veilchain status` show.
type Status struct {
	Version     int              `json:"version"`
	PID         int              `json:"pid,omitempty"`
	Since       time.Time        `json:"since"`
	Listeners   []ListenerStatus `json:"listeners"`
	Chains      []ChainStatus    `json:"chains"`
	Connections []ConnStatus     `json:"connections"`
}

// Totals are a listener's, chain's or hop position's counters.
type Totals struct {
	Open      int64     `json:"open"`
	Total     int64     `json:"total"`
	Failed    int64     `json:"failed"`
	BytesUp   int64     `json:"bytes_up"`
	BytesDown int64     `json:"bytes_down"`
	LastError string    `json:"last_error,omitempty"`
	ErrorAt   time.Time `json:"last_error_at,omitzero"`
	// Latency: handshake times, as counts per bucket (upper bounds in
	// milliseconds, the last one +Inf) and their sum.
	Latency LatencyStatus `json:"latency"`
}

// LatencyStatus is a Histogram read out.
type LatencyStatus struct {
	BoundsMS []float64 `json:"bounds_ms"`
	Counts   []uint64  `json:"counts"` // per bucket, not cumulative; one more than BoundsMS
	Count    uint64    `json:"count"`
	SumMS    float64   `json:"sum_ms"`
}

// ListenerStatus is one listener's.
type ListenerStatus struct {
	Name string `json:"name"`
	Totals
}

// ChainStatus is one chain: its hop positions in order.
type ChainStatus struct {
	Name string `json:"name"`
	// Direct: a chain that connects without proxies.
	Direct bool        `json:"direct,omitempty"`
	Mode   string      `json:"mode,omitempty"`
	Hops   []HopStatus `json:"hops"`
	// Prebuilt counts the circuits ready, when the chain builds them
	// ahead of time (Prebuild is how many it keeps).
	Prebuilt int `json:"prebuilt,omitempty"`
	Prebuild int `json:"prebuild,omitempty"`
	// Exit is the address the world sees, when an echo service was
	// asked through the chain (status_echo_url).
	Exit *ExitStatus `json:"exit,omitempty"`
	Totals
}

// HopStatus is one position of a chain: a hop, or a pool's members.
type HopStatus struct {
	Position int            `json:"position"` // 1-based; the last is the exit
	Members  []MemberStatus `json:"members"`
	Totals
}

// MemberStatus is one proxy at a position, as health checks and real
// connections found it.
type MemberStatus struct {
	Addr string `json:"addr"`
	// Health: "up" (its last handshake worked), "down" (its last one
	// failed: dead until it works again), or "unknown" (not tried yet).
	Health    string  `json:"health"`
	Fails     int     `json:"fails,omitempty"`
	LatencyMS float64 `json:"latency_ms,omitempty"` // average handshake time
}

// ConnStatus is one live connection. Dest is shown on the control
// endpoint and the local page only.
type ConnStatus struct {
	ID        uint64    `json:"id"`
	Listener  string    `json:"listener"`
	User      string    `json:"user,omitempty"`
	Chain     string    `json:"chain"`
	Hops      []string  `json:"hops"`
	Dest      string    `json:"dest"`
	BytesUp   int64     `json:"bytes_up"`
	BytesDown int64     `json:"bytes_down"`
	Since     time.Time `json:"since"`
	AgeS      float64   `json:"age_s"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (c *Counters) read(live [2]int64) Totals {
	t := Totals{Open: c.open.Load(), Total: c.total.Load(), Failed: c.failed.Load(),
		BytesUp: c.up.Load() + live[0], BytesDown: c.down.Load() + live[1]}
	c.mu.Lock()
	t.LastError, t.ErrorAt = c.lastErr, c.errAt
	c.mu.Unlock()
	l := &t.Latency
	for _, b := range Buckets {
		l.BoundsMS = append(l.BoundsMS, ms(b))
	}
	for i := range c.latency.counts {
		n := c.latency.counts[i].Load()
		l.Counts = append(l.Counts, n)
		l.Count += n
	}
	l.SumMS = ms(time.Duration(c.latency.sum.Load()))
	return t
}

// Status reads the state now.
func (r *Registry) Status() *Status {
	st := &Status{Version: Version}
	if r == nil {
		return st
	}
	now := r.now()
	r.mu.Lock()
	listeners, chains, hops := maps.Clone(r.listeners), maps.Clone(r.chains), maps.Clone(r.hops)
	st.Since = r.started
	live := slices.Collect(maps.Keys(r.live))
	exits := maps.Clone(r.exits)
	r.mu.Unlock()

	// Live connections' bytes so far count in their listener's, chain's
	// and positions' totals.
	liveBytes := map[*Counters][2]int64{}
	for _, c := range live {
		b := [2]int64{c.counts[0].Load(), c.counts[1].Load()}
		for _, k := range c.keys {
			v := liveBytes[k]
			liveBytes[k] = [2]int64{v[0] + b[0], v[1] + b[1]}
		}
		st.Connections = append(st.Connections, ConnStatus{ID: c.id, Listener: c.listener, User: c.user,
			Chain: c.chain, Hops: c.path, Dest: c.dest, BytesUp: b[0], BytesDown: b[1],
			Since: c.start, AgeS: now.Sub(c.start).Seconds()})
	}
	slices.SortFunc(st.Connections, func(a, b ConnStatus) int { return cmp.Compare(a.ID, b.ID) })

	for _, name := range slices.Sorted(maps.Keys(listeners)) {
		c := listeners[name]
		st.Listeners = append(st.Listeners, ListenerStatus{Name: name, Totals: c.read(liveBytes[c])})
	}
	read := func(c *Counters) Totals {
		if c == nil {
			return (&Counters{}).read([2]int64{})
		}
		return c.read(liveBytes[c])
	}
	var topology map[string]chain.Dialer
	if r.Chains != nil {
		topology = r.Chains()
	}
	names := map[string]bool{}
	for n := range topology {
		names[n] = true
	}
	for n := range chains {
		names[n] = true // a chain a reload removed, while its counts last
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		cs := ChainStatus{Name: name, Totals: read(chains[name])}
		if e, ok := exits[name]; ok {
			cs.Exit = &e
		}
		switch d := topology[name].(type) {
		case *chain.Chain:
			cs.Mode = modeName(d.Mode)
			cs.Prebuilt, cs.Prebuild = d.Prebuilt(), d.Prebuild
			for i, pos := range d.Hops {
				hs := HopStatus{Position: i + 1, Totals: read(hops[hopKey{name, i + 1}])}
				members := []chain.Hop{pos}
				if p, ok := pos.(*chain.Pool); ok {
					members = p.Members
				}
				for _, m := range members {
					hs.Members = append(hs.Members, member(d.Health, m))
				}
				cs.Hops = append(cs.Hops, hs)
			}
		case nil:
			// Gone in a reload, or "direct": what a rule with direct:
			// true tells (policy.Router), which is no chain of the config.
			cs.Direct = name == "direct"
		default:
			cs.Direct = true
		}
		st.Chains = append(st.Chains, cs)
	}
	return st
}

func member(h *chain.Health, m chain.Hop) MemberStatus {
	s := h.State(m)
	out := MemberStatus{Addr: m.Addr(), Fails: s.Fails, LatencyMS: ms(s.Latency)}
	switch {
	case s.Fails > 0:
		out.Health = "down"
	case s.Latency > 0:
		out.Health = "up"
	default:
		out.Health = "unknown"
	}
	return out
}

func modeName(m chain.Mode) string {
	switch m {
	case chain.Dynamic:
		return "dynamic"
	case chain.Random:
		return "random"
	case chain.RoundRobin:
		return "round-robin"
	}
	return "strict"
}

// Bytes writes a byte count for people: 512 B, 1.5 KiB, 3.2 MiB, 1.0 GiB
// (the status command and the page say it the same way).
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
