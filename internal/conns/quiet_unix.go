//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package conns

import (
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
	var n int
	var perr error
	if err := rc.Control(func(fd uintptr) {
		n, _, perr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	}); err != nil {
		return false // closed here
	}
	return n < 0 && (perr == syscall.EAGAIN || perr == syscall.EWOULDBLOCK)
}

// quietWorks: Quiet really looks here.
const quietWorks = true
