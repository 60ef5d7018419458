package resolver

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/veilchain/veilchain/chain"
)

// ErrUnmapped is a connection to a fake address that maps to no name
// (expired, or never handed out): it is refused, never dialled.
var ErrUnmapped = fmt.Errorf("%w: fake address with no name (expired?); resolve the name again", chain.ErrBadAddress)

// Unmap returns a Dialer that turns a connection to one of pool's fake
// addresses back into the name it stands for, then dials next.
func Unmap(next chain.Dialer, pool *FakePool) chain.Dialer {
	return chain.DialerFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return next.DialContext(ctx, network, addr)
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !pool.Contains(ip) {
			return next.DialContext(ctx, network, addr)
		}
		name, ok := pool.Name(ip)
		if !ok {
			return nil, ErrUnmapped
		}
		return next.DialContext(ctx, network, net.JoinHostPort(name, port))
	})
}
