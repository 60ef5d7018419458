package main

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/configs"
)

// refuseLoops refuses a config in which a hop that can come first is one
// of this process's own listeners (listening: their bound addresses):
// every connection would come back in and dial again, until descriptors
// run out. A hop given by a name other than localhost is not resolved
// here; the front ends' LoopGuard catches it at run time.
func refuseLoops(cfg *configs.Config, listening []net.Addr) error {
	var local []netip.Addr // this machine's addresses, for unspecified listeners
	for _, name := range slices.Sorted(maps.Keys(cfg.Chains)) {
		ch := cfg.Chains[name]
		for i, spec := range ch.Hops {
			if i > 0 && (ch.Mode == "" || ch.Mode == "strict") {
				break // only hop 1 of a strict chain is dialled from here; the others from hops
			}
			for _, raw := range spec.URLs() {
				h, err := chain.ParseHop(raw) // validated already
				if err != nil {
					continue
				}
				for _, ln := range listening {
					if local == nil && isUnspecified(ln) {
						local = localAddrs()
					}
					if !hopIsListener(h.Addr(), ln, local) {
						continue
					}
					hint := ""
					if _, port, _ := net.SplitHostPort(h.Addr()); port == "1080" && !strings.Contains(raw, ":1080") {
						hint = " (a socks hop URL without a port means port 1080)"
					}
					return fmt.Errorf("chain %q, hop %d: %s is this process's own listener %s%s: "+
						"every connection would come back in and go out again, until descriptors run out. "+
						"A first hop must be another proxy", name, i+1, h.Addr(), ln, hint)
				}
			}
		}
	}
	return nil
}

// hopIsListener reports whether dialling hop (host:port) reaches the
// listener bound at ln. local lists this machine's addresses.
func hopIsListener(hop string, ln net.Addr, local []netip.Addr) bool {
	host, port, err := net.SplitHostPort(hop)
	if err != nil {
		return false
	}
	tcp, ok := ln.(*net.TCPAddr)
	if !ok || port != fmt.Sprint(tcp.Port) {
		return false
	}
	var ips []netip.Addr
	if strings.EqualFold(host, "localhost") {
		ips = []netip.Addr{netip.IPv6Loopback(), netip.AddrFrom4([4]byte{127, 0, 0, 1})}
	} else if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip.Unmap()}
	}
	lip, _ := netip.AddrFromSlice(tcp.IP)
	lip = lip.Unmap()
	for _, ip := range ips {
		switch {
		case ip == lip:
			return true
		case ip.IsUnspecified() && (lip.IsLoopback() || lip.IsUnspecified()):
			return true // 0.0.0.0 and :: as a destination reach this machine
		case lip.IsUnspecified() && (ip.IsLoopback() || slices.Contains(local, ip)):
			return true
		}
	}
	return false
}

func isUnspecified(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsUnspecified()
}

// localAddrs are this machine's interface addresses (none if they cannot
// be listed: loopback and unspecified hops are still caught).
func localAddrs() []netip.Addr {
	local := []netip.Addr{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			local = append(local, p.Addr().Unmap())
		}
	}
	return local
}
