package conns

import (
	"context"
	"net"
)

// Go turns TCP keepalive on for every conn it dials or accepts: four
// setsockopt calls each, six conns per connection through a chain of two
// hops. Keepalive finds peers that vanished without a word (a machine off,
// a NAT that forgot the flow); a peer on this machine cannot vanish that
// way, since the kernel ends a loopback conn itself when either side goes.
// So veilchain's front ends and hops turn it on only for conns whose peer
// is elsewhere (a hop link or a client that leaves the machine, a
// destination), with Go's timing.

// Listen is net.Listen for TCP, whose accepted conns get keepalive only
// when their peer is not on loopback (see KeepAliveOffMachine).
func Listen(network, addr string) (net.Listener, error) {
	ln, err := (&net.ListenConfig{KeepAlive: -1}).Listen(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	if tl, ok := ln.(*net.TCPListener); ok {
		return keepAliveListener{tl}, nil
	}
	return ln, nil
}

type keepAliveListener struct{ *net.TCPListener }

func (l keepAliveListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	KeepAliveOffMachine(c)
	return c, nil
}

// KeepAliveOffMachine turns TCP keepalive on for c, with Go's default
// timing, unless c's peer is on loopback; c is a conn dialled or accepted
// with keepalive off (a net.Dialer or net.ListenConfig with KeepAlive -1).
func KeepAliveOffMachine(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	if a, ok := tc.RemoteAddr().(*net.TCPAddr); ok && a.IP.IsLoopback() {
		return
	}
	tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true})
}
