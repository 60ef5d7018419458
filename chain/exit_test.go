package chain_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

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

// An IPv6 address that stands for an IPv4 one (NAT64, 6to4, Teredo,
// IPv4-compatible or -mapped) is refused when that IPv4 address is.
func TestForbiddenEmbeddedIPv4(t *testing.T) {
	for _, tt := range []struct {
		ip        string
		embedded  string // "" when ip carries none
		forbidden bool
	}{
		{"64:ff9b::7f00:1", "127.0.0.1", true},
		{"64:ff9b::10.1.2.3", "10.1.2.3", true},
		{"64:ff9b::169.254.169.254", "169.254.169.254", true},
		{"64:ff9b::100.64.0.1", "100.64.0.1", true},
		{"64:ff9b::8.8.8.8", "8.8.8.8", false},
		{"64:ff9b:1::127.0.0.1", "127.0.0.1", true},
		{"64:ff9b:1::8.8.8.8", "8.8.8.8", true}, // local-use NAT64: the exit's own network, refused whole
		{"::127.0.0.1", "127.0.0.1", true},
		{"::192.168.0.1", "192.168.0.1", true},
		{"::8.8.8.8", "8.8.8.8", false},
		{"::ffff:169.254.169.254", "169.254.169.254", true},
		{"2002:7f00:1::1", "127.0.0.1", true},
		{"2002:a9fe:a9fe:1::5", "169.254.169.254", true},
		{"2002:c0a8:101::1", "192.168.1.1", true},
		{"2002:808:808::1", "8.8.8.8", false},
		// Teredo: server 65.54.227.120, client obfuscated (XOR 0xffffffff).
		{"2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1", true},
		{"2001:0:4136:e378:8000:63bf:f5ff:fffe", "10.0.0.1", true},
		{"2001:0:4136:e378:8000:63bf:f7f7:f7f7", "8.8.8.8", false},
		{"::1", "", true}, {"::", "", true},
		{"2001:4860:4860::8888", "", false}, {"2001:db9::1", "", false},
	} {
		ip := netip.MustParseAddr(tt.ip)
		if got := chain.Forbidden(ip); got != tt.forbidden {
			t.Errorf("Forbidden(%s) = %v, want %v", tt.ip, got, tt.forbidden)
		}
		v4, ok := chain.EmbeddedIPv4(ip)
		if want := tt.embedded; ok != (want != "") || ok && v4 != netip.MustParseAddr(want) {
			t.Errorf("EmbeddedIPv4(%s) = %v, %v; want %q", tt.ip, v4, ok, want)
		}
	}
}

// The guard checks the embedded address of what it dials, and --allow
// ranges let it through the same way.
func TestExitGuardEmbeddedIPv4(t *testing.T) {
	for _, tt := range []struct {
		addr    string
		allow   string
		refused bool
	}{
		{"[64:ff9b::7f00:1]:80", "", true},
		{"[2002:7f00:1::1]:80", "", true},
		{"[2001:0:4136:e378:8000:63bf:80ff:fffe]:80", "", true},
		{"[::10.0.0.1]:80", "", true},
		{"[64:ff9b::a00:1]:80", "10.0.0.0/8", false},
	} {
		exit := &chain.Exit{Timeout: 100 * time.Millisecond}
		if tt.allow != "" {
			exit.Allow = []netip.Prefix{netip.MustParsePrefix(tt.allow)}
		}
		c, err := exit.DialContext(context.Background(), "tcp", tt.addr)
		if c != nil {
			c.Close()
		}
		if got := errors.Is(err, chain.ErrForbidden); got != tt.refused {
			t.Errorf("dial %s (allow %q): err = %v, want refused %v", tt.addr, tt.allow, err, tt.refused)
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

// A refusal says which range, and what kind, without the address.
func TestExitRefusalNamesTheRange(t *testing.T) {
	for _, tt := range []struct {
		addr, rng, kind, via string
	}{
		{"10.1.2.3:80", "10.0.0.0/8", "private", ""},
		{"127.0.0.1:80", "127.0.0.0/8", "loopback", ""},
		{"[::ffff:169.254.169.254]:80", "169.254.0.0/16", "link-local", ""},
		{"[fe80::1%lo]:80", "fe80::/10", "link-local", ""},
		{"[64:ff9b::a9fe:a9fe]:80", "169.254.0.0/16", "link-local", "NAT64"},
		{"[2002:c0a8:101::1]:80", "192.168.0.0/16", "private", "6to4"},
		{"[2001:0:4136:e378:8000:63bf:80ff:fffe]:80", "127.0.0.0/8", "loopback", "Teredo"},
		{"[64:ff9b:1::808:808]:80", "64:ff9b:1::/48", "local-use NAT64", ""},
		{"100.64.1.1:80", "100.64.0.0/10", "CGNAT", ""},
	} {
		_, err := (&chain.Exit{}).DialContext(context.Background(), "tcp", tt.addr)
		fe, ok := errors.AsType[*chain.ForbiddenError](err)
		if !ok || !errors.Is(err, chain.ErrForbidden) {
			t.Errorf("dial %s: err = %v, want a ForbiddenError", tt.addr, err)
			continue
		}
		if fe.Range.String() != tt.rng || fe.Kind != tt.kind || fe.Via != tt.via {
			t.Errorf("dial %s: refused as %+v, want range %s, kind %s, via %q", tt.addr, fe, tt.rng, tt.kind, tt.via)
		}
		host, _, _ := net.SplitHostPort(tt.addr)
		if msg := fmt.Sprint(fe.Error(), fe.LogAttrs()); strings.Contains(msg, host) && tt.rng != host+"/32" {
			t.Errorf("dial %s: the refusal names the address: %s", tt.addr, msg)
		}
		if !strings.Contains(fe.Hint(), "--allow "+tt.rng) {
			t.Errorf("dial %s: hint %q does not say --allow %s", tt.addr, fe.Hint(), tt.rng)
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
