package chain

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"time"
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
	d := net.Dialer{Timeout: e.Timeout, Resolver: e.Resolver}
	if d.Timeout <= 0 {
		d.Timeout = DefaultHandshakeTimeout
	}
	if e.LocalIP.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: e.LocalIP.AsSlice()}
	}
	d.Control = e.control
	return d.DialContext(ctx, network, addr)
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
func (e *Exit) guard(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrForbidden, err)
	}
	ip := ap.Addr().Unmap()
	if Forbidden(ip) && !slices.ContainsFunc(e.Allow, func(p netip.Prefix) bool { return p.Contains(ip) }) {
		return fmt.Errorf("%w: %s is in a local or private range", ErrForbidden, ip)
	}
	return nil
}

var forbiddenPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),      // CGNAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),       // IETF protocol assignments
	netip.MustParsePrefix("255.255.255.255/32"), // limited broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"),     // local-use NAT64 (RFC 8215)
}

// Forbidden reports whether an exit refuses ip by default: loopback,
// private (RFC 1918, fc00::/7), link-local (which holds cloud metadata
// addresses), CGNAT, unspecified, multicast and broadcast.
func Forbidden(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() {
		return true
	}
	for _, p := range forbiddenPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
