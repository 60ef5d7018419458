package resolver

import (
	"container/list"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// FakePool hands out addresses from reserved ranges for names, as Tor's
// AutomapHostsOnResolve does: a program that insists on resolving gets a
// fake address, and when it connects there, Unmap turns the address back
// into the name, which then travels down the chain as a name.
type FakePool struct {
	V4, V6 netip.Prefix
	// TTL is how long a mapping lives after its last use (default 30 min).
	TTL time.Duration
	// Max bounds the mappings kept (default 65536); the least recently
	// used goes first.
	Max int

	mu           sync.Mutex
	byName       map[string]*fakeEntry
	byAddr       map[netip.Addr]*fakeEntry
	lru          list.List // front: most recently used
	next4, next6 netip.Addr
}

type fakeEntry struct {
	name   string
	v4, v6 netip.Addr
	used   time.Time
	elem   *list.Element
}

func (p *FakePool) ttl() time.Duration {
	if p.TTL > 0 {
		return p.TTL
	}
	return 30 * time.Minute
}

// max is Max, but never more names than either range has addresses.
func (p *FakePool) max() int {
	m := 65536
	if p.Max > 0 {
		m = p.Max
	}
	for _, r := range []netip.Prefix{p.V4, p.V6} {
		if r.IsValid() {
			if bits := r.Addr().BitLen() - r.Bits(); bits < 30 {
				m = min(m, 1<<bits-1) // minus the all-zero address
			}
		}
	}
	return max(m, 1)
}

// Contains reports whether a is in one of the pool's ranges.
func (p *FakePool) Contains(a netip.Addr) bool {
	a = a.Unmap()
	return p.V4.IsValid() && p.V4.Contains(a) || p.V6.IsValid() && p.V6.Contains(a)
}

// Addr returns name's fake address (IPv6 if v6), allocating one if needed.
// It reports false if the pool has no range of that family.
func (p *FakePool) Addr(name string, v6 bool) (netip.Addr, bool) {
	if v6 && !p.V6.IsValid() || !v6 && !p.V4.IsValid() {
		return netip.Addr{}, false
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byName == nil {
		p.byName, p.byAddr = map[string]*fakeEntry{}, map[netip.Addr]*fakeEntry{}
	}
	e := p.byName[name]
	if e != nil && time.Since(e.used) > p.ttl() {
		p.remove(e)
		e = nil
	}
	if e == nil {
		for len(p.byName) >= p.max() {
			p.remove(p.lru.Back().Value.(*fakeEntry))
		}
		e = &fakeEntry{name: name}
		e.elem = p.lru.PushFront(e)
		p.byName[name] = e
	}
	e.used = time.Now()
	p.lru.MoveToFront(e.elem)
	a := &e.v4
	if v6 {
		a = &e.v6
	}
	if !a.IsValid() {
		*a = p.allocate(v6)
		p.byAddr[*a] = e
	}
	return *a, true
}

// allocate takes the next free address of the range, round and round.
// An address still mapped is never handed to another name: programs may
// have cached it, and live connections use it. There is always a free
// one, since max() keeps fewer names than the range has addresses.
func (p *FakePool) allocate(v6 bool) netip.Addr {
	prefix, next := p.V4, &p.next4
	if v6 {
		prefix, next = p.V6, &p.next6
	}
	for {
		if !next.IsValid() || !prefix.Contains(*next) {
			*next = prefix.Masked().Addr().Next() // skip the all-zero address
		}
		a := *next
		*next = a.Next()
		if p.byAddr[a] == nil {
			return a
		}
	}
}

func (p *FakePool) remove(e *fakeEntry) {
	p.lru.Remove(e.elem)
	delete(p.byName, e.name)
	for _, a := range []netip.Addr{e.v4, e.v6} {
		if a.IsValid() && p.byAddr[a] == e {
			delete(p.byAddr, a)
		}
	}
}

// Name returns the name a fake address stands for, if it is still mapped.
func (p *FakePool) Name(a netip.Addr) (string, bool) {
	a = a.Unmap()
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.byAddr[a]
	if e == nil {
		return "", false
	}
	if time.Since(e.used) > p.ttl() {
		p.remove(e)
		return "", false
	}
	e.used = time.Now()
	p.lru.MoveToFront(e.elem)
	return e.name, true
}
