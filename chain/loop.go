package chain

import (
	"net"
	"net/netip"
	"sync"
)

// LoopGuard knows the connections this process has open to first hops
// while their handshakes run, so that a front end can tell when one of
// them arrives at itself. A first hop that is one of our own listeners
// would otherwise relay each connection into another one, until the
// descriptors run out.
//
// One guard is shared by the chains and the front ends of a process. A
// connection is known by its two ends, so only that very connection
// matches. A chain adds its conn as soon as the first hop is dialled,
// before it writes a byte, and forgets it when the dial is over; a front
// end asks once it has read a request, which is after that write. The
// zero value is ready to use; a nil *LoopGuard knows nothing.
type LoopGuard struct {
	mu    sync.Mutex
	conns map[[2]netip.AddrPort]struct{} // {local, remote} of our outgoing conns
}

// Looped reports whether conn, as accepted by a front end, is the far end
// of one of this process's own conns to a first hop.
func (g *LoopGuard) Looped(conn net.Conn) bool {
	if g == nil {
		return false
	}
	// Seen from here the ends are swapped: its remote is our local.
	key, ok := ends(conn.RemoteAddr(), conn.LocalAddr())
	if !ok {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	_, found := g.conns[key]
	return found
}

// track adds conn, an outgoing conn to a first hop, and returns the
// function that forgets it again (safe to call more than once).
func (g *LoopGuard) track(conn net.Conn) (untrack func()) {
	if g == nil {
		return func() {}
	}
	key, ok := ends(conn.LocalAddr(), conn.RemoteAddr())
	if !ok {
		return func() {}
	}
	g.mu.Lock()
	if g.conns == nil {
		g.conns = map[[2]netip.AddrPort]struct{}{}
	}
	g.conns[key] = struct{}{}
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			delete(g.conns, key)
			g.mu.Unlock()
		})
	}
}

// ends is the key of a TCP conn with these ends; ok is false for other
// kinds of conn (pipes in tests, a Forward that is not TCP).
func ends(local, remote net.Addr) (key [2]netip.AddrPort, ok bool) {
	l, ok1 := local.(*net.TCPAddr)
	r, ok2 := remote.(*net.TCPAddr)
	if !ok1 || !ok2 {
		return key, false
	}
	lp, rp := l.AddrPort(), r.AddrPort()
	return [2]netip.AddrPort{
		netip.AddrPortFrom(lp.Addr().Unmap(), lp.Port()),
		netip.AddrPortFrom(rp.Addr().Unmap(), rp.Port()),
	}, true
}
