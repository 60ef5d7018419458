//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package conns

import (
	"io"
	"net"
	"syscall"
)

// Quiet reports, without waiting, whether c (a socket) has nothing queued
// to read and has not been closed by its peer: a non-blocking MSG_PEEK,
// on Linux, macOS and the BSDs, portable build or not (it is not a
// speed-up: a chain's prebuilt circuits use it to find one a hop closed
// while it waited). Not a socket: true.
func Quiet(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	var b [1]byte
	_, err = PeekRaw(rc, b[:], false)
	return err == syscall.EAGAIN
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

// quietWorks: Quiet really looks here.
const quietWorks = true
