//go:build !portable

package conns

import (
	"net"
	"syscall"
)

// canPeek: Peek works on sockets here. Linux is where it pays: a conn
// peeked at, not read, stays the raw *net.TCPConn the relay splices.
const canPeek = true

// Peek waits until c has bytes to read and copies up to len(buf) of them
// into buf without consuming them (MSG_PEEK): the next read returns them
// again. It returns io.EOF when c's peer has closed, and ErrNoPeek when c
// is not a socket; the caller then reads, and keeps what it read.
func Peek(c net.Conn, buf []byte) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, ErrNoPeek
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, ErrNoPeek
	}
	return PeekRaw(rc, buf, true)
}
