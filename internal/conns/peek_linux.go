//go:build !portable

package conns

import (
	"io"
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

// PeekRaw is Peek on a socket's RawConn. With wait false it returns at
// once, with syscall.EAGAIN if nothing is queued; with wait true it waits
// under the socket's read deadline, on the runtime's poller.
func PeekRaw(rc syscall.RawConn, buf []byte, wait bool) (int, error) {
	var n int
	var opErr error
	peek := func(fd uintptr) bool {
		n, _, opErr = syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return !wait || opErr != syscall.EAGAIN // nothing yet: let the poller wait
	}
	var err error
	if wait {
		err = rc.Read(peek)
	} else {
		err = rc.Control(func(fd uintptr) { peek(fd) })
	}
	switch {
	case err != nil:
		return 0, err
	case opErr != nil:
		return 0, opErr
	case n == 0 && len(buf) > 0:
		return 0, io.EOF
	}
	return n, nil
}
