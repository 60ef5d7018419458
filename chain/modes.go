package chain

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync/atomic"
)

// Mode chooses which hops a connection takes (as proxychains-ng users know
// them). Modes never change how a hop connects, and none ever goes direct.
type Mode int

const (
	// Strict takes every hop in order; any hop down fails the connection.
	Strict Mode = iota
	// Dynamic takes the hops in order, skipping dead ones; one must work.
	Dynamic
	// Random draws Length hops from the list for each connection.
	Random
	// RoundRobin takes Length hops in order from a rotating start.
	RoundRobin
)

// ParseMode reads strict, dynamic, random or round-robin ("" is strict).
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "strict":
		return Strict, nil
	case "dynamic":
		return Dynamic, nil
	case "random":
		return Random, nil
	case "round-robin":
		return RoundRobin, nil
	}
	return 0, fmt.Errorf("chain mode %q: want strict, dynamic, random or round-robin", s)
}

// Selector chooses a member of a Pool.
type Selector int

const (
	// Failover takes the first member that is alive.
	Failover Selector = iota
	// RoundRobinSelect takes the members in turn.
	RoundRobinSelect
	// RandomSelect takes any member.
	RandomSelect
	// LeastLatency takes the member with the fastest handshakes.
	LeastLatency
)

// ParseSelector reads failover, round-robin, random or least-latency.
func ParseSelector(s string) (Selector, error) {
	switch s {
	case "", "failover":
		return Failover, nil
	case "round-robin":
		return RoundRobinSelect, nil
	case "random":
		return RandomSelect, nil
	case "least-latency":
		return LeastLatency, nil
	}
	return 0, fmt.Errorf("pool selector %q: want failover, round-robin, random or least-latency", s)
}

// Pool is one position of a chain served by several proxies: each
// connection takes one member, chosen by Select among the live ones.
type Pool struct {
	Members []Hop
	Select  Selector
	next    atomic.Uint64
}

// Addr names the pool by its first member (a Pool is expanded into one
// member before dialling; this is for logs).
func (p *Pool) Addr() string { return p.Members[0].Addr() }

// ErrPoolUnpicked is a Pool asked to connect: a Chain picks one of its
// members for each connection, and only a member has a handshake.
var ErrPoolUnpicked = errors.New("a pool connects through a member a chain picks, not by itself")

// Connect refuses: a Pool is a position in a chain, which puts one of its
// members there for each connection (see Chain). Connecting through the
// first member here would quietly skip the pool's selection and health.
func (p *Pool) Connect(context.Context, net.Conn, string) (net.Conn, error) {
	return nil, ErrPoolUnpicked
}

// membersOf is what can stand at a position of a chain: a pool's
// members, or the hop itself.
func membersOf(pos Hop) []Hop {
	if p, ok := pos.(*Pool); ok {
		return p.Members
	}
	return []Hop{pos}
}

// pick chooses a member not in skip (those that failed earlier in this
// dial): among the live ones if any, else among the others (trying a dead
// hop beats refusing while it may have come back). It returns nil when
// every member is in skip.
func (p *Pool) pick(h *Health, skip map[Hop]bool) Hop {
	var live, untried []Hop
	for _, m := range p.Members {
		if !skip[m] {
			untried = append(untried, m)
			if h.Alive(m) {
				live = append(live, m)
			}
		}
	}
	if len(live) == 0 {
		live = untried
	}
	if len(live) == 0 {
		return nil
	}
	switch p.Select {
	case RoundRobinSelect:
		return live[int(p.next.Add(1)-1)%len(live)]
	case RandomSelect:
		return live[rand.IntN(len(live))]
	case LeastLatency:
		best := live[0]
		for _, m := range live[1:] {
			if h.Latency(m) < h.Latency(best) {
				best = m
			}
		}
		return best
	}
	return live[0]
}

// plan returns the concrete hops for one connection attempt, leaving out
// the hops in skip (those that failed earlier in this dial), and pools
// whose every member is in skip.
func (c *Chain) plan(skip map[Hop]bool) ([]Hop, error) {
	positions := c.Hops
	n := len(positions)
	length := c.Length
	if length <= 0 || length > n {
		length = n
	}
	var chosen []Hop
	switch c.Mode {
	case Strict:
		chosen = append(chosen, positions...)
	case Dynamic:
		for _, h := range positions {
			if !tried(h, skip) && c.alive(h) {
				chosen = append(chosen, h)
			}
		}
		if len(chosen) == 0 { // every hop seems dead: try those not failed in this dial
			for _, h := range positions {
				if !tried(h, skip) {
					chosen = append(chosen, h)
				}
			}
		}
	case Random:
		order := rand.Perm(n)
		for _, i := range order {
			if len(chosen) < length && !tried(positions[i], skip) && c.alive(positions[i]) {
				chosen = append(chosen, positions[i])
			}
		}
		for _, i := range order { // not enough live ones: fill with the others
			if len(chosen) < length && !tried(positions[i], skip) && !containsHop(chosen, positions[i]) {
				chosen = append(chosen, positions[i])
			}
		}
	case RoundRobin:
		start := int(c.next.Add(1) - 1)
		for k := 0; k < n && len(chosen) < length; k++ {
			if h := positions[(start+k)%n]; !tried(h, skip) && c.alive(h) {
				chosen = append(chosen, h)
			}
		}
		for k := 0; k < n && len(chosen) < length; k++ {
			if h := positions[(start+k)%n]; !tried(h, skip) && !containsHop(chosen, h) {
				chosen = append(chosen, h)
			}
		}
	}
	if len(chosen) == 0 {
		return nil, errNoLiveHops
	}
	for i, h := range chosen {
		if p, ok := h.(*Pool); ok {
			if chosen[i] = p.pick(c.Health, skip); chosen[i] == nil {
				return nil, errNoLiveHops
			}
		}
	}
	return chosen, nil
}

// tried reports whether h failed earlier in this dial: for a pool, every
// one of its members.
func tried(h Hop, skip map[Hop]bool) bool {
	if p, ok := h.(*Pool); ok {
		return !slices.ContainsFunc(p.Members, func(m Hop) bool { return !skip[m] })
	}
	return skip[h]
}

// pooled reports whether h is a member of one of c's pools.
func (c *Chain) pooled(h Hop) bool {
	for _, pos := range c.Hops {
		if p, ok := pos.(*Pool); ok && slices.Contains(p.Members, h) {
			return true
		}
	}
	return false
}

var errNoLiveHops = errors.New("no hop left to try: every hop failed")

// alive: a hop not in a dead period, or a pool with any member alive.
func (c *Chain) alive(h Hop) bool {
	if p, ok := h.(*Pool); ok {
		for _, m := range p.Members {
			if c.Health.Alive(m) {
				return true
			}
		}
		return false
	}
	return c.Health.Alive(h)
}

func containsHop(hs []Hop, h Hop) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}
