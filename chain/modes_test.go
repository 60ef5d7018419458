package chain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func hops(n int) []Hop {
	var hs []Hop
	for i := range n {
		hs = append(hs, &SOCKS5{Address: fmt.Sprintf("192.0.2.%d:1080", i+1)})
	}
	return hs
}

func TestPoolSelectors(t *testing.T) {
	members := hops(3)
	count := func(p *Pool, h *Health, n int) map[Hop]int {
		c := map[Hop]int{}
		for range n {
			c[p.pick(h, nil)]++
		}
		return c
	}
	if c := count(&Pool{Members: members, Select: RoundRobinSelect}, nil, 300); c[members[0]] != 100 || c[members[1]] != 100 || c[members[2]] != 100 {
		t.Errorf("round-robin: %v, want 100 each", c)
	}
	// Random: each of 3 members in 3000 picks lands within 800-1200
	// (about 8 standard deviations: this fails only when it is broken).
	for m, n := range count(&Pool{Members: members, Select: RandomSelect}, nil, 3000) {
		if n < 800 || n > 1200 {
			t.Errorf("random: %s picked %d times of 3000", m.Addr(), n)
		}
	}
	h := &Health{Backoff: time.Hour}
	if c := count(&Pool{Members: members, Select: Failover}, h, 10); c[members[0]] != 10 {
		t.Errorf("failover with all alive: %v, want the first", c)
	}
	h.Failed(members[0])
	if c := count(&Pool{Members: members, Select: Failover}, h, 10); c[members[1]] != 10 {
		t.Errorf("failover with the first dead: %v, want the second", c)
	}
	h.Succeeded(members[1], 30*time.Millisecond)
	h.Succeeded(members[2], 10*time.Millisecond)
	if c := count(&Pool{Members: members, Select: LeastLatency}, h, 10); c[members[2]] != 10 {
		t.Errorf("least-latency: %v, want the fastest live member", c)
	}
	h.Failed(members[1])
	h.Failed(members[2])
	if c := count(&Pool{Members: members, Select: Failover}, h, 10); c[members[0]] != 10 {
		t.Errorf("failover with all dead: %v, want a try of the first", c)
	}
}

func TestChainModesPlan(t *testing.T) {
	hs := hops(4)
	c := &Chain{Hops: hs, Mode: Random, Length: 2}
	seen := map[Hop]int{}
	for range 400 {
		p, err := c.plan(nil)
		if err != nil || len(p) != 2 || p[0] == p[1] {
			t.Fatalf("random plan %v, %v: want 2 distinct hops", p, err)
		}
		seen[p[0]]++
		seen[p[1]]++
	}
	for _, h := range hs {
		if seen[h] < 120 || seen[h] > 280 {
			t.Errorf("random: %s in %d of 400 plans (want about 200)", h.Addr(), seen[h])
		}
	}

	c = &Chain{Hops: hs[:3], Mode: RoundRobin, Length: 2}
	for i, want := range [][2]int{{0, 1}, {1, 2}, {2, 0}, {0, 1}} {
		p, _ := c.plan(nil)
		if p[0] != hs[want[0]] || p[1] != hs[want[1]] {
			t.Errorf("round-robin plan %d = %s, %s", i, p[0].Addr(), p[1].Addr())
		}
	}

	h := &Health{Backoff: time.Hour}
	h.Failed(hs[1])
	c = &Chain{Hops: hs[:3], Mode: Dynamic, Health: h}
	if p, _ := c.plan(nil); len(p) != 2 || p[0] != hs[0] || p[1] != hs[2] {
		t.Errorf("dynamic plan with hop 2 dead: %v", p)
	}
	if p, _ := c.plan(map[Hop]bool{hs[0]: true}); len(p) != 1 || p[0] != hs[2] {
		t.Errorf("dynamic plan after hop 1 failed in this dial: %v", p)
	}
	if _, err := c.plan(map[Hop]bool{hs[0]: true, hs[2]: true, hs[1]: true}); err == nil {
		t.Error("a plan with every hop failed")
	}
	// A pool whose first member is dead is still alive through the others.
	pool := &Pool{Members: []Hop{&SOCKS5{Address: "198.51.100.1:1080"}, &SOCKS5{Address: "198.51.100.2:1080"}}}
	h.Failed(pool.Members[0])
	c = &Chain{Hops: []Hop{hs[0], pool, hs[2]}, Mode: Random, Length: 1, Health: h}
	picked := 0
	for range 300 {
		if p, _ := c.plan(nil); p[0] == pool.Members[1] {
			picked++
		}
	}
	if picked < 60 {
		t.Errorf("random: a pool with a live member was chosen %d times of 300 (want about 100)", picked)
	}
	c = &Chain{Hops: hs[:3], Mode: Strict, Health: h}
	if p, _ := c.plan(nil); len(p) != 3 {
		t.Errorf("strict plan skipped a dead hop: %v", p)
	}
	// A pool whose every member failed in this dial: left out of a
	// dynamic chain, the end of a strict one.
	both := map[Hop]bool{pool.Members[0]: true, pool.Members[1]: true}
	c = &Chain{Hops: []Hop{hs[0], pool}, Mode: Dynamic, Health: h}
	if p, err := c.plan(both); err != nil || len(p) != 1 || p[0] != hs[0] {
		t.Errorf("dynamic plan with every pool member failed: %v, %v", p, err)
	}
	c.Mode = Strict
	if p, err := c.plan(both); err == nil {
		t.Errorf("strict plan with every pool member failed: %v", p)
	}
	if p, _ := c.plan(map[Hop]bool{pool.Members[1]: true}); len(p) != 2 || p[1] != pool.Members[0] {
		t.Errorf("strict plan with the live member failed in this dial: %v, want the other member tried", p)
	}
}

// A pool has no handshake of its own: asked to connect, it refuses
// instead of going through its first member behind the selector's back.
func TestPoolDoesNotConnectByItself(t *testing.T) {
	p := &Pool{Members: []Hop{&SOCKS5{Address: "a:1"}, &SOCKS5{Address: "b:1"}}}
	if _, err := p.Connect(context.Background(), nil, "dest.example:80"); !errors.Is(err, ErrPoolUnpicked) {
		t.Fatalf("Pool.Connect = %v, want ErrPoolUnpicked", err)
	}
}

// A dial's error names a hop by its place in the chain as configured, as
// check does, not by its place in the path a mode drew for this dial.
func TestErrorsNumberHopsAsConfigured(t *testing.T) {
	// Loopback ports nothing listens on: each dial is refused at once.
	addrs := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}
	var hs []Hop
	for _, a := range addrs {
		hs = append(hs, &SOCKS5{Address: a})
	}
	seen := map[int]bool{}
	for range 60 {
		c := &Chain{Hops: hs, Mode: Random, Length: 1, Health: &Health{}}
		_, err := c.DialContext(context.Background(), "tcp", "dest.example:80")
		he, ok := errors.AsType[*HopError](err)
		if !ok {
			t.Fatalf("err = %v, want a HopError", err)
		}
		if want := slices.Index(addrs, he.Addr); he.Index != want {
			t.Fatalf("%s is hop %d as configured; the error says hop %d: %v", he.Addr, want+1, he.Index+1, err)
		}
		seen[he.Index] = true
	}
	if len(seen) < 2 {
		t.Fatalf("only positions %v failed last in 60 random dials", seen)
	}
}
