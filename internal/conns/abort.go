package conns

import (
	"net"
)

// Abort closes the TCP connection under c with a reset (SO_LINGER 0), not
// a FIN, and without a TLS close_notify: its peer must not take the end of
// a stream that was cut short for a complete one. It looks through the
// wrappers that say what they hold (NetConn, as *tls.Conn has). The
// caller still closes c itself; for a conn with no TCP under it, Abort
// does nothing.
func Abort(c any) {
	for {
		switch v := c.(type) {
		case *net.TCPConn:
			v.SetLinger(0)
			v.Close()
			return
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return
		}
	}
}
