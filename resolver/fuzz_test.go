package resolver

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/miekg/dns"

	"github.com/veilchain/veilchain/chain"
)

// FuzzAnswer feeds arbitrary packets to the DNS front end (fake-ip mode,
// with a chain that is down): no panic, and every answer is a well-formed
// reply to the query it answers.
func FuzzAnswer(f *testing.F) {
	for _, q := range []*dns.Msg{
		new(dns.Msg).SetQuestion("dest.example.", dns.TypeA),
		new(dns.Msg).SetQuestion("dest.example.", dns.TypeAAAA),
		new(dns.Msg).SetQuestion("dest.example.", dns.TypeTXT),
		new(dns.Msg).SetQuestion(".", dns.TypeNS),
	} {
		b, _ := q.Pack()
		f.Add(b)
	}
	down := chain.DialerFunc(func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("down") })
	s := &Server{Dialer: down, Upstream: "r.far:53", Pool: pool()}
	f.Fuzz(func(t *testing.T, packet []byte) {
		req := new(dns.Msg)
		if req.Unpack(packet) != nil {
			return // miekg/dns drops what it cannot parse
		}
		m := s.answer(req)
		if m == nil {
			return
		}
		if m.Id != req.Id || !m.Response {
			t.Fatalf("answer id %d response %v for query id %d", m.Id, m.Response, req.Id)
		}
		if _, err := m.Pack(); err != nil {
			t.Fatalf("answer does not pack: %v", err)
		}
	})
}
