package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/internal/testnet"
	"github.com/veilchain/veilchain/socks"
)

// nxResolver answers every name with "no such host".
type nxResolver struct{}

func (nxResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestLeakTestCatchesLocalResolution: a dialer that looks names up on
// this machine, as a leaky proxy would, must fail the self-test; one
// that does not must pass it.
func TestLeakTestCatchesLocalResolution(t *testing.T) {
	local := &countingResolver{next: nxResolver{}}
	leaky := chain.DialerFunc(func(ctx context.Context, _, a string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(a)
		local.LookupNetIP(ctx, "ip", host)
		return nil, errors.New("leaky test dialer")
	})
	tight := chain.DialerFunc(func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("tight test dialer")
	})
	r := chainReport{OK: true}
	leakTest(context.Background(), &r, leaky, local, "check.invalid")
	if r.OK || len(r.Err) == 0 || !strings.Contains(r.Err[0], "DNS LEAK") {
		t.Fatalf("leaky dialer: report %+v, want a DNS LEAK failure", r)
	}
	r = chainReport{OK: true}
	leakTest(context.Background(), &r, tight, local, "check.invalid")
	if !r.OK || !strings.Contains(r.Leak, "asked 0 times") {
		t.Fatalf("tight dialer: report %+v", r)
	}
}

// check leaves the process's resolver alone: the chains get one of
// their own, and a first hop given by name is still looked up.
func TestCheckKeepsTheDefaultResolver(t *testing.T) {
	before := net.DefaultResolver
	exit := testnet.Serve(t, &socks.Server{Dialer: chain.DialerFunc(func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("test exit reaches nothing")
	})})
	_, port, _ := net.SplitHostPort(exit)
	out, _ := runApp("check", "--hop", "socks5://localhost:"+port)
	if net.DefaultResolver != before {
		t.Fatal("check replaced net.DefaultResolver")
	}
	if !strings.Contains(out, "localhost:"+port) || strings.Contains(out, "no such host") {
		t.Fatalf("check could not look the hop's name up:\n%s", out)
	}
}
