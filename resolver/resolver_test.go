package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/veilchain/veilchain/chain"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pool() *FakePool {
	return &FakePool{V4: netip.MustParsePrefix("198.18.0.0/15"), V6: netip.MustParsePrefix("fd00:7665:696c::/48")}
}

func TestFakePool(t *testing.T) {
	p := pool()
	a, _ := p.Addr("Example.COM.", false)
	b, _ := p.Addr("example.com", false)
	c, _ := p.Addr("other.example", false)
	v6, _ := p.Addr("example.com", true)
	if a != b || a == c || !p.V4.Contains(a) || !p.V6.Contains(v6) {
		t.Fatalf("addresses %s %s %s %s", a, b, c, v6)
	}
	for addr, want := range map[netip.Addr]string{a: "example.com", v6: "example.com", c: "other.example"} {
		if n, ok := p.Name(addr); !ok || n != want {
			t.Errorf("Name(%s) = %q, %v; want %q", addr, n, ok, want)
		}
	}
	if _, ok := p.Name(netip.MustParseAddr("198.18.200.1")); ok {
		t.Error("an address never handed out has a name")
	}
	if !p.Contains(netip.MustParseAddr("::ffff:198.19.0.1")) || p.Contains(netip.MustParseAddr("198.20.0.1")) {
		t.Error("Contains is wrong about the range")
	}

	// Expiry.
	p = pool()
	p.TTL = 10 * time.Millisecond
	a, _ = p.Addr("short.example", false)
	time.Sleep(20 * time.Millisecond)
	if _, ok := p.Name(a); ok {
		t.Error("an expired mapping still resolves")
	}

	// Eviction: the least recently used goes when the pool is full.
	p = pool()
	p.Max = 2
	x, _ := p.Addr("x.example", false)
	y, _ := p.Addr("y.example", false)
	p.Name(x) // x is now the most recently used
	p.Addr("z.example", false)
	if _, ok := p.Name(y); ok {
		t.Error("the least recently used mapping survived eviction")
	}
	if n, ok := p.Name(x); !ok || n != "x.example" {
		t.Error("a recently used mapping was evicted")
	}

	// A small range: the least recently used name gives its address up,
	// and a name in use keeps its own, whatever the allocation order.
	p = &FakePool{V4: netip.MustParsePrefix("198.18.0.0/29")} // 7 usable
	busy, _ := p.Addr("busy.t", false)
	for i := range 50 {
		n := fmt.Sprintf("n%d.t", i)
		a, _ := p.Addr(n, false)
		if a == busy || a == netip.MustParseAddr("198.18.0.0") {
			t.Fatalf("%s got %s: the address of a name in use, or the zero address", n, a)
		}
		if got, ok := p.Name(a); !ok || got != n {
			t.Fatalf("%s maps to %q, want %s", a, got, n)
		}
		if got, ok := p.Name(busy); !ok || got != "busy.t" {
			t.Fatalf("the name in constant use lost its address to %q", got)
		}
	}
}

func TestUnmap(t *testing.T) {
	p := pool()
	a, _ := p.Addr("dest.example", false)
	var got string
	next := chain.DialerFunc(func(_ context.Context, _, addr string) (net.Conn, error) {
		got = addr
		return nil, errors.New("recorded")
	})
	d := Unmap(next, p)
	d.DialContext(context.Background(), "tcp", net.JoinHostPort(a.String(), "443"))
	if got != "dest.example:443" {
		t.Fatalf("fake address dialled as %q, want the name", got)
	}
	d.DialContext(context.Background(), "tcp", "192.0.2.1:80")
	if got != "192.0.2.1:80" {
		t.Fatalf("a real address became %q", got)
	}
	got = ""
	if _, err := d.DialContext(context.Background(), "tcp", "198.19.255.1:80"); !errors.Is(err, ErrUnmapped) || got != "" {
		t.Fatalf("unmapped fake address: err %v, dialled %q", err, got)
	}
}

// upstream is a Zone served over TCP, reached through a counting "chain".
type upstream struct {
	zone  *Zone
	addr  string
	dials atomic.Int32
	fail  bool
	slow  bool // every query write waits 50 ms, so concurrent askers overlap
}

type slowConn struct{ net.Conn }

func (c slowConn) Write(b []byte) (int, error) {
	time.Sleep(50 * time.Millisecond)
	return c.Conn.Write(b)
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{zone: &Zone{Records: map[string]netip.Addr{"dest.example": netip.MustParseAddr("192.0.2.7")}}}
	addr, err := u.zone.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = addr
	t.Cleanup(func() { u.zone.Close() })
	return u
}

func (u *upstream) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	u.dials.Add(1)
	if u.fail {
		return nil, &chain.HopError{Index: 0, Addr: "h:1", Err: errors.New("down")}
	}
	if network != "tcp" || addr != "resolver.far:53" {
		return nil, errors.New("unexpected dial " + network + " " + addr)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.addr)
	if err == nil && u.slow {
		c = slowConn{c}
	}
	return c, err
}

func query(t *testing.T, s *Server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	return s.answer(q)
}

func TestForwardThroughTheChain(t *testing.T) {
	up := newUpstream(t)
	s := &Server{Dialer: up, Upstream: "resolver.far:53"}
	defer s.Shutdown(context.Background())
	m := query(t, s, "dest.example", dns.TypeA)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "192.0.2.7" {
		t.Fatalf("answer %v", m)
	}
	// Cached: the upstream is not asked again.
	query(t, s, "DEST.example", dns.TypeA)
	if n := up.zone.Queries("dest.example"); n != 1 {
		t.Fatalf("upstream asked %d times, want 1 (cache)", n)
	}
	// The connection to the upstream was reused.
	query(t, s, "third.example", dns.TypeA)
	if n := up.dials.Load(); n != 1 {
		t.Fatalf("dialled the chain %d times, want 1 (reuse)", n)
	}
	// Different types never share an answer, even types without a name.
	a, b := query(t, s, "dest.example", 65280), query(t, s, "dest.example", 65281)
	if a.Question[0].Qtype != 65280 || b.Question[0].Qtype != 65281 {
		t.Fatalf("answers for types %d and %d", a.Question[0].Qtype, b.Question[0].Qtype)
	}
	// A cached answer carries the asker's spelling of the name (0x20).
	if m := query(t, s, "DeSt.ExAmPlE", dns.TypeA); m.Question[0].Name != "DeSt.ExAmPlE." || m.Answer[0].Header().Name == "" {
		t.Fatalf("question %q", m.Question[0].Name)
	}
}

func TestForwardCoalesces(t *testing.T) {
	up := newUpstream(t)
	up.slow = true
	s := &Server{Dialer: up, Upstream: "resolver.far:53"}
	defer s.Shutdown(context.Background())
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { query(t, s, "other.example", dns.TypeAAAA) })
	}
	wg.Wait()
	if n := up.zone.Queries("other.example"); n != 1 {
		t.Fatalf("20 concurrent queries made %d upstream queries, want 1", n)
	}
	// Negative answers pass through.
	if m := query(t, s, "nothing.example", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Fatalf("rcode %d, want NXDOMAIN", m.Rcode)
	}
}

func TestForwardFailureIsServfail(t *testing.T) {
	up := newUpstream(t)
	up.fail = true
	s := &Server{Dialer: up, Upstream: "resolver.far:53"}
	if m := query(t, s, "dest.example", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %d, want SERVFAIL", m.Rcode)
	}
	// A silent upstream: SERVFAIL at the timeout.
	silent, _ := net.Listen("tcp", "127.0.0.1:0")
	defer silent.Close()
	s = &Server{Timeout: 200 * time.Millisecond, Upstream: silent.Addr().String(), Dialer: &net.Dialer{}}
	begin := time.Now()
	if m := query(t, s, "dest.example", dns.TypeA); m.Rcode != dns.RcodeServerFailure || time.Since(begin) > 3*time.Second {
		t.Fatalf("rcode %d after %v", m.Rcode, time.Since(begin))
	}
}

func TestFakeIPAnswers(t *testing.T) {
	up := newUpstream(t)
	p := pool()
	s := &Server{Dialer: up, Upstream: "resolver.far:53", Pool: p, Blocked: func(n string) bool { return n == "ads.example" }}
	defer s.Shutdown(context.Background())
	m := query(t, s, "dest.example", dns.TypeA)
	a, _ := netip.AddrFromSlice(m.Answer[0].(*dns.A).A)
	if name, ok := p.Name(a.Unmap()); !ok || name != "dest.example" || m.Answer[0].Header().Ttl != FakeTTL {
		t.Fatalf("fake answer %v maps to %q", m.Answer, name)
	}
	if up.zone.Total() != 0 {
		t.Fatal("a fake-ip answer asked the upstream")
	}
	// HTTPS/SVCB records carry real addresses: not in fake-ip mode.
	if m := query(t, s, "dest.example", dns.TypeHTTPS); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 || up.zone.Total() != 0 {
		t.Fatalf("HTTPS query: rcode %d, %d answers, upstream asked %d times", m.Rcode, len(m.Answer), up.zone.Total())
	}
	// Other types go through the chain.
	if m := query(t, s, "dest.example", dns.TypeMX); m.Rcode != dns.RcodeSuccess || up.zone.Total() != 1 {
		t.Fatalf("MX: rcode %d, upstream asked %d times", m.Rcode, up.zone.Total())
	}
	if m := query(t, s, "ads.example", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Fatalf("blocked name: rcode %d, want NXDOMAIN", m.Rcode)
	}
	s.BlockWithZero = true
	if m := query(t, s, "ads.example", dns.TypeA); len(m.Answer) != 1 || !m.Answer[0].(*dns.A).A.IsUnspecified() {
		t.Fatalf("blocked name with zero: %v", m.Answer)
	}
}

func TestBadQueries(t *testing.T) {
	s := &Server{Dialer: chain.DialerFunc(func(context.Context, string, string) (net.Conn, error) {
		t.Fatal("a bad query reached the chain")
		return nil, nil
	})}
	two := new(dns.Msg)
	two.SetQuestion("a.example.", dns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	if m := s.answer(two); m.Rcode != dns.RcodeFormatError {
		t.Errorf("two questions: rcode %d", m.Rcode)
	}
	none := new(dns.Msg)
	if m := s.answer(none); m.Rcode != dns.RcodeFormatError {
		t.Errorf("no question: rcode %d", m.Rcode)
	}
	upd := new(dns.Msg)
	upd.SetUpdate("example.")
	if m := s.answer(upd); m.Rcode != dns.RcodeNotImplemented {
		t.Errorf("update: rcode %d", m.Rcode)
	}
	resp := new(dns.Msg)
	resp.Response = true
	if m := s.answer(resp); m != nil {
		t.Errorf("a response got an answer")
	}
}
