package chain

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/veilchain/veilchain/internal/conns"
)

// Exit is the Dialer of a hop server: it resolves names itself and
// connects straight to the destination. Unless AllowPrivate is set it
// refuses destinations that would reach the exit's own machine or network
// (see Forbidden). The check runs on the address actually being dialled,
// after resolution, so a name that resolves to 127.0.0.1 (DNS rebinding)
// is refused like the literal.
type Exit struct {
	AllowPrivate bool
	// Allow lists ranges reached even though Forbidden says no (a LAN
	// the exit is meant to serve, say).
	Allow []netip.Prefix
	// LocalIP, if valid, is the source address of outgoing connections.
	LocalIP netip.Addr
	// Resolver resolves destination names; nil means the system resolver.
	Resolver *net.Resolver
	// Timeout bounds each connect (default 10 s).
	Timeout time.Duration
}

// DialContext implements Dialer.
func (e *Exit) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	// Keepalive only off this machine (see conns.KeepAliveOffMachine).
	d := net.Dialer{Timeout: e.Timeout, Resolver: e.Resolver, KeepAlive: -1}
	if d.Timeout <= 0 {
		d.Timeout = DefaultHandshakeTimeout
	}
	if e.LocalIP.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: e.LocalIP.AsSlice()}
	}
	d.Control = e.control
	conn, err := d.DialContext(ctx, network, addr)
	if err == nil {
		conns.KeepAliveOffMachine(conn)
	}
	return conn, err
}

// control runs on each socket after resolution, before bind(2) and
// connect(2): the guard, then the source port's choice.
func (e *Exit) control(network, address string, c syscall.RawConn) error {
	if !e.AllowPrivate {
		if err := e.guard(network, address, c); err != nil {
			return err
		}
	}
	if e.LocalIP.IsValid() {
		leavePortToConnect(c)
	}
	return nil
}

// guard runs after resolution, just before connect(2), on the real address.
// An IPv6 address that carries an IPv4 one (see EmbeddedIPv4) is refused
// when either of the two is: NAT64 or 6to4 would carry it to that IPv4
// address. The refusal is a *ForbiddenError.
func (e *Exit) guard(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrForbidden, err)
	}
	for _, a := range addrsOf(ap.Addr()) {
		if fe := refusal(a.ip); fe != nil && !slices.ContainsFunc(e.Allow, func(p netip.Prefix) bool { return p.Contains(a.ip) }) {
			fe.Via = a.via
			return fe
		}
	}
	return nil
}

// ForbiddenError is an exit's refusal of a destination by its address
// range. It names the range, never the address, so that it can be logged
// at info level; errors.Is(err, ErrForbidden) holds.
type ForbiddenError struct {
	Range netip.Prefix // the refused range the address is in
	Kind  string       // what the range is: "loopback", "private", "link-local", ...
	// Via is set when the range matched the IPv4 address inside an IPv6
	// one: "NAT64", "6to4", "Teredo", "IPv4-compatible".
	Via string
}

func (e *ForbiddenError) Error() string {
	via := ""
	if e.Via != "" {
		via = " (the IPv4 address inside a " + e.Via + " address)"
	}
	return fmt.Sprintf("%v: in the %s range %s%s", ErrForbidden, e.Kind, e.Range, via)
}

func (e *ForbiddenError) Unwrap() error { return ErrForbidden }

// Hint says how the exit's operator lets the range through.
func (e *ForbiddenError) Hint() string {
	return fmt.Sprintf("veilchain serve --allow %s lets this range through; --allow-private, every local range", e.Range)
}

// LogAttrs are the refusal's key-value pairs for a log line at info
// level: the range and why, never the destination.
func (e *ForbiddenError) LogAttrs() []any {
	attrs := []any{"range", e.Range.String(), "kind", e.Kind}
	if e.Via != "" {
		attrs = append(attrs, "via", e.Via)
	}
	return append(attrs, "hint", e.Hint())
}

// refusedRanges are what an exit refuses by default. IPv4-mapped
// addresses are unmapped before they are looked up.
var refusedRanges = []struct {
	p    netip.Prefix
	kind string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"}, // 0.0.0.0 dials the exit itself
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "CGNAT"}, // RFC 6598
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"}, // cloud metadata addresses
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"}, // RFC 8215: the exit's own network
	{netip.MustParsePrefix("fc00::/7"), "private"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// refusal returns the refused range ip is in, or nil.
func refusal(ip netip.Addr) *ForbiddenError {
	ip = ip.WithZone("").Unmap()
	if !ip.IsValid() {
		return &ForbiddenError{Kind: "invalid"}
	}
	for _, r := range refusedRanges {
		if r.p.Contains(ip) {
			return &ForbiddenError{Range: r.p, Kind: r.kind}
		}
	}
	return nil
}

// Forbidden reports whether an exit refuses ip by default: loopback,
// private (RFC 1918, fc00::/7), link-local (which holds cloud metadata
// addresses), CGNAT, unspecified, multicast and broadcast, and any IPv6
// address that carries such an IPv4 address (see EmbeddedIPv4).
func Forbidden(ip netip.Addr) bool {
	return slices.ContainsFunc(addrsOf(ip), func(a viaAddr) bool { return refusal(a.ip) != nil })
}

// viaAddr is an address to check, and the form it was embedded in ("" for
// the address itself).
type viaAddr struct {
	ip  netip.Addr
	via string
}

// addrsOf is ip (unmapped, without a zone) and, if it carries one, its
// embedded IPv4 address.
func addrsOf(ip netip.Addr) []viaAddr {
	ip = ip.WithZone("").Unmap()
	if v4, via, ok := embeddedIPv4(ip); ok {
		return []viaAddr{{ip, ""}, {v4, via}}
	}
	return []viaAddr{{ip, ""}}
}

var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")   // RFC 6052
	nat64LocalUse  = netip.MustParsePrefix("64:ff9b:1::/48") // RFC 8215
	ipv4Compatible = netip.MustParsePrefix("::/96")          // RFC 4291, deprecated
	sixToFour      = netip.MustParsePrefix("2002::/16")      // RFC 3056
	teredo         = netip.MustParsePrefix("2001::/32")      // RFC 4380
)

// EmbeddedIPv4 returns the IPv4 address an IPv6 address stands for, which
// a translator or tunnel on the way would reach in its place:
//
//	::ffff:a.b.c.d        IPv4-mapped
//	::a.b.c.d             IPv4-compatible (not :: or ::1 themselves)
//	64:ff9b::a.b.c.d      NAT64 well-known prefix, the last 32 bits
//	64:ff9b:1::/48        local-use NAT64, taken as a /96 (the last 32 bits)
//	2002:AABB:CCDD::/48   6to4, bits 16-48
//	2001:0:S:S:F:P:C:C    Teredo, the client is the last 32 bits XOR 0xffffffff
func EmbeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	v4, _, ok := embeddedIPv4(ip)
	return v4, ok
}

// embeddedIPv4 is EmbeddedIPv4, and names the form.
func embeddedIPv4(ip netip.Addr) (netip.Addr, string, bool) {
	if ip.Is4In6() {
		return ip.Unmap(), "IPv4-mapped", true
	}
	if !ip.Is6() {
		return netip.Addr{}, "", false
	}
	ip = ip.WithZone("")
	b := ip.As16()
	last := [4]byte{b[12], b[13], b[14], b[15]}
	switch {
	case ipv4Compatible.Contains(ip):
		if ip == netip.IPv6Unspecified() || ip == netip.IPv6Loopback() {
			return netip.Addr{}, "", false
		}
		return netip.AddrFrom4(last), "IPv4-compatible", true
	case nat64WellKnown.Contains(ip), nat64LocalUse.Contains(ip):
		return netip.AddrFrom4(last), "NAT64", true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), "6to4", true
	case teredo.Contains(ip):
		return netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}), "Teredo", true
	}
	return netip.Addr{}, "", false
}
