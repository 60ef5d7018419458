// Package resolver holds veilchain's DNS pieces (github.com/miekg/dns).
// Zone is a small authoritative server with fixed records that counts the
// queries it gets: the exit's resolver in `demo`, and both the exit's
// resolver and the stand-in for a local system resolver in tests.
package resolver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Zone answers A and AAAA queries from Records and NXDOMAIN for other names.
type Zone struct {
	// Records maps a name (any case, with or without the final dot) to its address.
	Records map[string]netip.Addr
	// OnQuery, if set, is called with the name of every query.
	OnQuery func(name string)

	mu      sync.Mutex
	queries map[string]int
	servers dnsServers
}

// ServeDNS implements dns.Handler.
func (z *Zone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := canonical(q.Name)
	z.mu.Lock()
	if z.queries == nil {
		z.queries = map[string]int{}
	}
	z.queries[name]++
	z.mu.Unlock()
	if z.OnQuery != nil {
		z.OnQuery(name)
	}

	ip, ok := z.lookup(name)
	switch {
	case !ok:
		m.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeA && ip.Is4():
		m.Answer = append(m.Answer, &dns.A{Hdr: header(q), A: ip.AsSlice()})
	case q.Qtype == dns.TypeAAAA && ip.Is6():
		m.Answer = append(m.Answer, &dns.AAAA{Hdr: header(q), AAAA: ip.AsSlice()})
	}
	w.WriteMsg(m)
}

func header(q dns.Question) dns.RR_Header {
	return dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: 60}
}

func (z *Zone) lookup(name string) (netip.Addr, bool) {
	for n, ip := range z.Records {
		if canonical(n) == name {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// Queries returns how many queries (of any type) name has had.
func (z *Zone) Queries(name string) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.queries[canonical(name)]
}

// Total returns how many queries the zone has answered.
func (z *Zone) Total() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	n := 0
	for _, c := range z.queries {
		n += c
	}
	return n
}

func canonical(name string) string {
	return strings.ToLower(dns.Fqdn(name))
}

// Listen serves the zone on UDP and TCP at addr ("127.0.0.1:0" picks a
// free port, the same for both) and returns the address.
func (z *Zone) Listen(addr string) (string, error) { return z.servers.listen(addr, z) }

// Close stops the servers started by Listen.
func (z *Zone) Close() error { return z.servers.shutdown(context.Background()) }

// dnsServers are the servers a handler's Listen started, for its close.
type dnsServers struct {
	mu   sync.Mutex
	list []*dns.Server
}

// listen serves h on UDP and TCP at addr and returns the bound address.
func (d *dnsServers) listen(addr string, h dns.Handler) (string, error) {
	bound, servers, err := serveBoth(addr, h)
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	d.list = append(d.list, servers...)
	d.mu.Unlock()
	return bound, nil
}

// shutdown stops every server started so far.
func (d *dnsServers) shutdown(ctx context.Context) error {
	d.mu.Lock()
	list := d.list
	d.list = nil
	d.mu.Unlock()
	var errs []error
	for _, s := range list {
		errs = append(errs, s.ShutdownContext(ctx))
	}
	return errors.Join(errs...)
}

// serveBoth serves h on UDP and TCP at addr (the same port for both) and
// returns the bound address once both serve. TCP clients that go quiet
// are dropped after 10 s.
func serveBoth(addr string, h dns.Handler) (string, []*dns.Server, error) {
	pc, ln, err := listenBoth(addr)
	if err != nil {
		return "", nil, err
	}
	idle := func() time.Duration { return 10 * time.Second }
	servers := []*dns.Server{
		{PacketConn: pc, Handler: h},
		{Listener: ln, Handler: h, ReadTimeout: 10 * time.Second, IdleTimeout: idle},
	}
	var started sync.WaitGroup
	for _, s := range servers {
		started.Add(1)
		s.NotifyStartedFunc = started.Done
		go s.ActivateAndServe()
	}
	started.Wait()
	return pc.LocalAddr().String(), servers, nil
}

// listenBoth listens on UDP and TCP at the same address. With port 0 the
// UDP port is picked first and may be taken for TCP: it tries again.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	var err error
	for range 20 {
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			return nil, nil, err
		}
		var ln net.Listener
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if _, port, _ := net.SplitHostPort(addr); port != "0" {
			break
		}
	}
	return nil, nil, err
}
