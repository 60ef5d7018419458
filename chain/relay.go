package chain

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Relay copies a→b and b→a until both directions have ended, then returns
// the byte counts. When one direction reaches EOF, the write side of the
// other conn is closed (half-close) and the opposite direction goes on;
// when one fails, both conns are closed so the other direction ends too.
// Cancelling ctx closes both conns. The caller still owns a and b. They
// are usually net.Conns; any stream works (an upgraded HTTP body, say), and
// one without CloseWrite is closed whole when its direction ends.
//
// Pass the conns as they are: io.Copy between two *net.TCPConn splices on
// Linux, and a wrapper that hides ReadFrom/WriteTo turns that into a
// user-space copy.
func Relay(ctx context.Context, a, b io.ReadWriteCloser) (aToB, bToA int64, err error) {
	closeBoth := func() {
		a.Close()
		b.Close()
	}
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()

	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := copyHalf(b, a, closeBoth)
		done <- result{n, err}
	}()
	bToA, errBA := copyHalf(a, b, closeBoth)
	r := <-done
	aToB = r.n
	if ctx.Err() != nil {
		return aToB, bToA, ctx.Err()
	}
	return aToB, bToA, errors.Join(r.err, errBA)
}

// copyHalf copies src to dst, then half-closes dst, or on error closes both.
func copyHalf(dst, src io.ReadWriteCloser, closeBoth func()) (int64, error) {
	var n int64
	var err error
	st, sok := src.(*net.TCPConn)
	dt, dok := dst.(*net.TCPConn)
	if sok && dok {
		n, err = spliceWhenReady(dt, st)
	} else {
		n, err = io.Copy(dst, src)
	}
	if err != nil {
		closeBoth()
		return n, err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return n, nil
		}
	}
	// dst cannot half-close: closing it whole is the only way to pass EOF on.
	closeBoth()
	return n, nil
}

// spliceWhenReady copies src to dst with splice(2) while data flows, and
// holds no pipe while it does not. A plain io.Copy between TCP conns
// keeps a pipe (2 descriptors) per direction for as long as it waits, so
// an idle relayed connection cost 6 descriptors in each process instead
// of 2, and a few thousand idle connections ran a process out of them.
// Here the copy runs under a short read deadline; when it expires with
// nothing to read, the loop waits on the poller alone (no pipe) until
// data comes. A long transfer only pays one extra loop per spliceIdle.
func spliceWhenReady(dst, src *net.TCPConn) (int64, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return io.Copy(dst, src)
	}
	var total int64
	for {
		src.SetReadDeadline(time.Time{}) // the wait below has no deadline
		queued, err := waitQueued(rc)
		if err != nil || queued == 0 {
			return total, err // queued 0 with no error: EOF
		}
		src.SetReadDeadline(time.Now().Add(spliceIdle))
		n, err := io.Copy(dst, src)
		total += n
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			src.SetReadDeadline(time.Time{})
			return total, err
		}
	}
}

const spliceIdle = time.Second

// waitQueued waits until rc is readable and returns how many bytes are
// queued on it; 0 means the peer closed its side.
func waitQueued(rc syscall.RawConn) (int, error) {
	var queued int
	var opErr error
	err := rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN:
			return false // nothing yet: let the poller wait
		case err != nil:
			opErr = err
		case n > 0:
			queued, opErr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
			queued = max(queued, 1)
		}
		return true
	})
	if err == nil {
		err = opErr
	}
	return queued, err
}
