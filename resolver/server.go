package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"

	"github.com/veilchain/veilchain/chain"
)

// Server is a DNS front end. Its answers never come from this machine's
// resolver: in fake-ip mode A and AAAA queries get addresses from Pool,
// and everything else (all of forward mode) goes as DNS over TCP through
// Dialer (the listener's chain) to Upstream, a resolver on the far side.
type Server struct {
	// Dialer reaches Upstream through the chain.
	Dialer chain.Dialer
	// Upstream is the far-side resolver's host:port (a destination of the chain).
	Upstream string
	// Pool, if set, answers A and AAAA with fake addresses (fake-ip mode).
	Pool *FakePool
	// Blocked, if set, reports names policy refuses: they get NXDOMAIN, or
	// 0.0.0.0 and :: with BlockWithZero.
	Blocked       func(name string) bool
	BlockWithZero bool
	// Timeout bounds a forwarded query, connect included (default 5 s).
	Timeout time.Duration
	// Context, if set, is the parent of every forwarded query's context
	// (it carries the client identity for policy).
	Context context.Context
	Logger  *slog.Logger

	cache cache
	sf    singleflight.Group

	mu       sync.Mutex
	idle     []idleConn // upstream conns kept for reuse
	inFlight chan struct{}
	servers  dnsServers
}

// FakeTTL is the TTL of fake answers: short, so programs ask again and
// keep the mapping fresh.
const FakeTTL = 60

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := s.answer(req)
	if resp == nil {
		return // not worth an answer
	}
	if ua, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		// Never answer a small UDP query with a large reply: off loopback
		// (an --allow-open listener) replies stay at 512 bytes whatever
		// the query asks, so spoofed sources get no amplification.
		size := dns.MinMsgSize
		if o := req.IsEdns0(); o != nil && ua.IP.IsLoopback() {
			size = int(max(o.UDPSize(), dns.MinMsgSize))
		}
		resp.Truncate(size)
	}
	w.WriteMsg(resp)
}

func (s *Server) answer(req *dns.Msg) *dns.Msg {
	if req.Response {
		return nil
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m
	}
	if len(req.Question) != 1 || len(req.Question[0].Name) > 255 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := req.Question[0]
	name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	if s.Blocked != nil && name != "" && s.Blocked(name) {
		if s.BlockWithZero && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA) {
			m.Answer = append(m.Answer, rr(q, netip.IPv4Unspecified(), netip.IPv6Unspecified(), FakeTTL))
		} else {
			m.Rcode = dns.RcodeNameError
		}
		return m
	}
	if s.Pool != nil && q.Qclass == dns.ClassINET && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA) && name != "" {
		if a, ok := s.Pool.Addr(name, q.Qtype == dns.TypeAAAA); ok {
			m.Answer = append(m.Answer, rr(q, a, a, FakeTTL))
		}
		return m // no fake range of that family: an empty answer
	}
	if s.Pool != nil && (q.Qtype == dns.TypeHTTPS || q.Qtype == dns.TypeSVCB) {
		// Their ipv4hint/ipv6hint carry real addresses, which a browser
		// may connect to by address, around the names rules match:
		// answer "no such record" instead, and it asks for A/AAAA.
		return m
	}
	resp, err := s.forward(req)
	if err != nil {
		if s.Logger != nil {
			s.Logger.Debug("dns forward failed", "name", name, "err", err)
		}
		m.Rcode = dns.RcodeServerFailure
		return m
	}
	resp.Id = req.Id
	resp.Question = req.Question // the asker's spelling (0x20 case randomisation)
	return resp
}

func rr(q dns.Question, v4, v6 netip.Addr, ttl uint32) dns.RR {
	hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: ttl}
	if q.Qtype == dns.TypeAAAA {
		return &dns.AAAA{Hdr: hdr, AAAA: v6.AsSlice()}
	}
	return &dns.A{Hdr: hdr, A: v4.AsSlice()}
}

// forward answers from the cache or, once for all concurrent askers of
// the same question, from Upstream through the chain.
func (s *Server) forward(req *dns.Msg) (*dns.Msg, error) {
	q := req.Question[0]
	key := fmt.Sprintf("%s/%d/%d", strings.ToLower(q.Name), q.Qtype, q.Qclass)
	if m := s.cache.get(key); m != nil {
		return m, nil
	}
	v, err, _ := s.sf.Do(key, func() (any, error) {
		// Bounded: each distinct question may need a chain connection.
		select {
		case s.slots() <- struct{}{}:
			defer func() { <-s.slots() }()
		default:
			return nil, errors.New("dns: too many queries in flight")
		}
		out := new(dns.Msg)
		out.SetQuestion(q.Name, q.Qtype)
		out.Question[0].Qclass = q.Qclass
		out.RecursionDesired = true
		out.SetEdns0(4096, false)
		m, err := s.exchange(out)
		if err != nil {
			return nil, err
		}
		s.cache.put(key, m)
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*dns.Msg).Copy(), nil
}

// Query asks Upstream through the chain, bypassing the cache (for
// `veilchain check`).
func (s *Server) Query(name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	return s.exchange(q)
}

// exchange sends one query over TCP through the chain, reusing an idle
// upstream connection when there is one.
func (s *Server) exchange(q *dns.Msg) (*dns.Msg, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	parent := s.Context
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	for attempt := 0; attempt < 2; attempt++ {
		var c net.Conn
		reused := false
		if attempt == 0 { // a retry dials afresh: other idle conns may be stale too
			c, reused = s.takeIdle()
		}
		if c == nil {
			var err error
			if c, err = s.Dialer.DialContext(ctx, "tcp", s.Upstream); err != nil {
				return nil, err
			}
		}
		deadline, _ := ctx.Deadline()
		c.SetDeadline(deadline)
		dc := &dns.Conn{Conn: c}
		err := dc.WriteMsg(q)
		var m *dns.Msg
		if err == nil {
			m, err = dc.ReadMsg()
		}
		if err == nil && m.Id != q.Id {
			err = errors.New("dns: reply for another query")
		}
		if err != nil {
			c.Close()
			if reused && ctx.Err() == nil {
				continue // the upstream closed an idle conn: try a fresh one
			}
			return nil, err
		}
		c.SetDeadline(time.Time{})
		s.putIdle(c)
		return m, nil
	}
	return nil, errors.New("dns: upstream closed the connection")
}

const (
	maxIdle     = 4
	maxIdleAge  = 30 * time.Second // also how long a reload leaves old chains in use for DNS
	maxInFlight = 64
)

type idleConn struct {
	net.Conn
	since time.Time
}

func (s *Server) takeIdle() (net.Conn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := len(s.idle); n > 0; n = len(s.idle) {
		c := s.idle[n-1]
		s.idle = s.idle[:n-1]
		if time.Since(c.since) < maxIdleAge {
			return c.Conn, true
		}
		c.Close()
	}
	return nil, false
}

func (s *Server) putIdle(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.idle) >= maxIdle {
		c.Close()
		return
	}
	s.idle = append(s.idle, idleConn{c, time.Now()})
}

func (s *Server) slots() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight == nil {
		s.inFlight = make(chan struct{}, maxInFlight)
	}
	return s.inFlight
}

// Listen serves DNS on UDP and TCP at addr and returns the bound address.
func (s *Server) Listen(addr string) (string, error) { return s.servers.listen(addr, s) }

// CloseIdle closes idle upstream connections, so that the next queries
// dial again (after a reload: through the new chain).
func (s *Server) CloseIdle() {
	s.mu.Lock()
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// Shutdown stops the listeners and closes idle upstream connections.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.servers.shutdown(ctx)
	s.CloseIdle()
	return err
}
