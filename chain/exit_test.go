package chain_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/internal/testnet"
	"github.com/veilchain/veilchain/resolver"
)

func TestForbidden(t *testing.T) {
	for _, tt := range []struct {
		ip        string
		forbidden bool
	}{
		{"127.0.0.1", true}, {"127.255.0.9", true}, {"::1", true},
		{"10.1.2.3", true}, {"172.16.0.1", true}, {"172.31.255.255", true}, {"192.168.1.1", true},
		{"fc00::1", true}, {"fd12:3456::1", true},
		{"169.254.169.254", true}, {"fe80::1", true},
		{"100.64.0.1", true}, {"100.127.255.254", true},
		{"0.0.0.0", true}, {"0.1.2.3", true}, {"::", true},
		{"224.0.0.1", true}, {"239.1.1.1", true}, {"ff02::1", true}, {"255.255.255.255", true},
		{"::ffff:127.0.0.1", true}, {"::ffff:10.0.0.1", true},
		{"8.8.8.8", false}, {"1.1.1.1", false}, {"172.32.0.1", false}, {"100.128.0.1", false},
		{"2001:4860:4860::8888", false}, {"::ffff:8.8.8.8", false}, {"198.18.0.1", false},
	} {
		if got := chain.Forbidden(netip.MustParseAddr(tt.ip)); got != tt.forbidden {
			t.Errorf("Forbidden(%s) = %v, want %v", tt.ip, got, tt.forbidden)
		}
	}
}

func TestExitGuardChecksTheDialledAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	// A public-looking name whose DNS answer is loopback (DNS rebinding).
	zone := &resolver.Zone{Records: map[string]netip.Addr{"rebind.example": netip.MustParseAddr("127.0.0.1")}}
	dnsAddr, err := zone.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer zone.Close()
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dnsAddr)
	}}

	for _, addr := range []string{"127.0.0.1:" + port, "[::ffff:127.0.0.1]:" + port, "rebind.example:" + port} {
		exit := &chain.Exit{Resolver: res}
		c, err := exit.DialContext(context.Background(), "tcp", addr)
		if err == nil {
			c.Close()
			t.Fatalf("exit dialled %s", addr)
		}
		if !errors.Is(err, chain.ErrForbidden) {
			t.Fatalf("dial %s: err = %v, want ErrForbidden", addr, err)
		}
	}
	if zone.Queries("rebind.example") == 0 {
		t.Fatal("the exit never asked its resolver: the name was not resolved at the exit")
	}

	exit := &chain.Exit{AllowPrivate: true, Resolver: res}
	c, err := exit.DialContext(context.Background(), "tcp", "rebind.example:"+port)
	if err != nil {
		t.Fatalf("AllowPrivate: %v", err)
	}
	c.Close()
}

func TestExitAllowsListedRanges(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	exit := &chain.Exit{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	c, err := exit.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("allowed range refused: %v", err)
	}
	c.Close()
	exit = &chain.Exit{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	if c, err := exit.DialContext(context.Background(), "tcp", ln.Addr().String()); !errors.Is(err, chain.ErrForbidden) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("loopback with only 10/8 allowed: %v", err)
	}
}

// An exit with a source address sends from it, guarded or not.
func TestExitSendsFromLocalIP(t *testing.T) {
	dest := testnet.Echo(t)
	for _, allowPrivate := range []bool{true, false} {
		c := dialFromLocalIP(t, dest, allowPrivate)
		if ip := c.LocalAddr().(*net.TCPAddr).IP; !ip.Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("AllowPrivate %v: source address %v, want 127.0.0.1", allowPrivate, ip)
		}
	}
}

// dialFromLocalIP dials dest through an exit with LocalIP 127.0.0.1; the
// conn is closed at the end of the test.
func dialFromLocalIP(t *testing.T, dest string, allowPrivate bool) net.Conn {
	t.Helper()
	e := &chain.Exit{AllowPrivate: allowPrivate, LocalIP: netip.MustParseAddr("127.0.0.1")}
	if !allowPrivate {
		e.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} // the guard runs, and lets this through
	}
	c, err := e.DialContext(context.Background(), "tcp", dest)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
