package conns

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// Sniff splits ln by the first byte each client sends: SOCKS (4 or 5) to
// the first listener returned, anything else (HTTP) to the second. The
// byte is peeked with MSG_PEEK, not read, so each server gets the raw,
// untouched *net.TCPConn (and the relay can still splice). A client that
// sends nothing within timeout is closed. Closing both returned listeners
// closes ln.
func Sniff(ln net.Listener, timeout time.Duration) (socks, http net.Listener) {
	lns := Split(ln, 2, timeout, func(c net.Conn) (net.Conn, int) {
		switch b, err := PeekByte(c); {
		case err != nil:
			c.Close()
			return nil, -1
		case b == 4 || b == 5:
			return c, 0
		}
		return c, 1
	})
	return lns[0], lns[1]
}

var errNotTCP = errors.New("sniffing needs a TCP connection")

// PeekByte returns the first unread byte of c without consuming it.
func PeekByte(c net.Conn) (byte, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0, errNotTCP
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var b [1]byte
	var n int
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		n, _, perr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
		return perr != syscall.EAGAIN // not ready yet: let the poller wait
	})
	switch {
	case err != nil:
		return 0, err
	case perr != nil:
		return 0, perr
	case n == 0:
		return 0, net.ErrClosed
	}
	return b[0], nil
}
