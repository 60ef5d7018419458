package chain

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
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
	return RelayIdle(ctx, a, b, 0)
}

// ErrIdle ends a relay that carried nothing either way for its idle timeout.
var ErrIdle = errors.New("relay idle timeout")

// RelayIdle is Relay that also ends, with ErrIdle, when neither direction
// has carried a byte for idle (0: never). Only net.Conns can time out.
func RelayIdle(ctx context.Context, a, b io.ReadWriteCloser, idle time.Duration) (aToB, bToA int64, err error) {
	var act *activity
	if idle > 0 {
		act = &activity{idle: idle}
		act.touch()
	}
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
		n, err := copyHalf(b, a, closeBoth, act)
		done <- result{n, err}
	}()
	bToA, errBA := copyHalf(a, b, closeBoth, act)
	r := <-done
	aToB = r.n
	if ctx.Err() != nil {
		return aToB, bToA, ctx.Err()
	}
	return aToB, bToA, errors.Join(r.err, errBA)
}

// copyHalf copies src to dst, then half-closes dst, or on error closes both.
func copyHalf(dst, src io.ReadWriteCloser, closeBoth func(), act *activity) (int64, error) {
	if p, ok := src.(*pendingConn); ok {
		// The chain's last replies come first on this side: check them,
		// then relay the conn underneath (which splices).
		if err := p.confirm(); err != nil {
			closeBoth()
			return 0, err
		}
		src = p.Conn
	}
	if p, ok := dst.(*pendingConn); ok {
		dst = p.Conn // writes never wait for the replies
	}
	var n int64
	var err error
	st, sok := src.(*net.TCPConn)
	dt, dok := dst.(*net.TCPConn)
	switch sc, isConn := src.(net.Conn); {
	case sok && dok:
		n, err = spliceWhenReady(dt, st, act)
	case act != nil && isConn:
		n, err = io.Copy(dst, &idleReader{c: sc, act: act})
	default:
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
func spliceWhenReady(dst, src *net.TCPConn, act *activity) (int64, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return io.Copy(dst, src)
	}
	var total int64
	for {
		src.SetReadDeadline(act.deadline()) // zero (none) without an idle timeout
		queued, err := waitQueued(rc)
		if act != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			if act.expired() {
				return total, ErrIdle
			}
			continue // the other direction was busy: wait again
		}
		if err != nil || queued == 0 {
			return total, err // queued 0 with no error: EOF
		}
		// The splice returns at least every window, so activity is seen
		// by the other direction's idle check while data flows.
		window := spliceIdle
		if act != nil {
			window = min(window, act.idle/2)
		}
		src.SetReadDeadline(time.Now().Add(window))
		n, err := io.Copy(dst, src)
		total += n
		if n > 0 {
			act.touch()
		}
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

// activity is when a relay last carried a byte, either way.
type activity struct {
	idle time.Duration
	last atomic.Int64 // unix nanoseconds
}

func (a *activity) touch() {
	if a != nil {
		a.last.Store(time.Now().UnixNano())
	}
}

// deadline is when the relay times out if nothing moves (zero: never).
func (a *activity) deadline() time.Time {
	if a == nil {
		return time.Time{}
	}
	return time.Unix(0, a.last.Load()).Add(a.idle)
}

func (a *activity) expired() bool { return !time.Now().Before(a.deadline()) }

// idleReader reads a non-TCP conn under the relay's idle deadline.
type idleReader struct {
	c   net.Conn
	act *activity
}

func (r *idleReader) Read(p []byte) (int, error) {
	for {
		r.c.SetReadDeadline(r.act.deadline())
		n, err := r.c.Read(p)
		if n > 0 {
			r.act.touch()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && n == 0 {
			if r.act.expired() {
				return 0, ErrIdle
			}
			continue
		}
		return n, err
	}
}
