package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/resolver"
)

// TestLeakTestCatchesLocalResolution: a dialer that resolves names on
// this machine, as a leaky proxy would, must fail the self-test; one
// that does not must pass it.
func TestLeakTestCatchesLocalResolution(t *testing.T) {
	standIn := &resolver.Zone{}
	addr, err := standIn.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer standIn.Close()
	local := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	leaky := chain.DialerFunc(func(ctx context.Context, _, a string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(a)
		local.LookupHost(ctx, host)
		return nil, errors.New("leaky test dialer")
	})
	tight := chain.DialerFunc(func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("tight test dialer")
	})
	r := chainReport{OK: true}
	leakTest(context.Background(), &r, leaky, standIn, "check.invalid")
	if r.OK || len(r.Err) == 0 || !strings.Contains(r.Err[0], "DNS LEAK") {
		t.Fatalf("leaky dialer: report %+v, want a DNS LEAK failure", r)
	}
	r = chainReport{OK: true}
	leakTest(context.Background(), &r, tight, standIn, "check.invalid")
	if !r.OK || !strings.Contains(r.Leak, "asked 0 times") {
		t.Fatalf("tight dialer: report %+v", r)
	}
}
