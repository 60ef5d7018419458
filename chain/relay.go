package chain

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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
	type result struct {
		aToB, bToA int64
		err        error
	}
	done := make(chan result, 1)
	// The caller keeps a and b and may close them to end the relay, so
	// nothing may be parked: a closed descriptor leaves epoll silently.
	startRelay(ctx, a, b, idle, false, func(aToB, bToA int64, err error) { done <- result{aToB, bToA, err} })
	r := <-done
	return r.aToB, r.bToA, r.err
}

// StartRelay is RelayIdle on goroutines of its own: it returns at once,
// and calls done with the result when both directions have ended. It owns
// a and b until then: end it early by cancelling ctx, never by closing
// them. Nobody has to wait in the meantime, and a direction between TCP
// conns that has carried bytes and then nothing for a whole splice window
// waits with no goroutine at all (see parking), until data comes or the
// idle deadline passes: an idle relayed connection costs its sockets and
// a little heap. (A direction that has never carried a byte waits on its
// goroutine: parking it at once would put the watcher on the first
// byte's path.)
func StartRelay(ctx context.Context, a, b io.ReadWriteCloser, idle time.Duration, done func(aToB, bToA int64, err error)) {
	startRelay(ctx, a, b, idle, true, done)
}

func startRelay(ctx context.Context, a, b io.ReadWriteCloser, idle time.Duration, parkable bool, done func(aToB, bToA int64, err error)) {
	r := &relay{ctx: ctx, a: a, b: b, done: done, parkable: parkable}
	if idle > 0 {
		r.act = &activity{idle: idle}
		r.act.touch()
	}
	r.left.Store(2)
	r.stop = context.AfterFunc(ctx, r.closeBoth)
	go r.half(0, b, a)
	go r.half(1, a, b)
}

// relay is one StartRelay: direction 0 copies a to b, direction 1 b to a.
type relay struct {
	ctx      context.Context
	a, b     io.ReadWriteCloser
	act      *activity
	parkable bool // the relay owns a and b: nothing closes them while a direction may be parked
	stop     func() bool
	done     func(aToB, bToA int64, err error)
	left     atomic.Int32 // directions still running
	n        [2]int64     // each written by its direction only, read by the last to end
	err      [2]error

	mu     sync.Mutex
	closed bool      // closeBoth has run: park no more
	parked [2]uint32 // parking tokens of the directions parked now
}

// closeBoth closes both conns, first taking any parked direction out of
// the parking lot (while the descriptors still name these sockets) and
// resuming it, so that it sees the close and ends.
func (r *relay) closeBoth() {
	r.mu.Lock()
	r.closed = true
	tokens := r.parked
	r.mu.Unlock()
	for _, t := range tokens {
		if t != 0 {
			parking.unpark(t)
		}
	}
	r.a.Close()
	r.b.Close()
}

// park leaves direction dir to the parking lot until src has something
// to read; it reports false when it cannot (the relay is closing, or
// there is no epoll), and the caller then waits on a goroutine.
func (r *relay) park(dir int, dst, src *net.TCPConn, total int64) bool {
	rc, err := src.SyscallConn()
	if err != nil {
		return false
	}
	fd := -1
	rc.Control(func(f uintptr) { fd = int(f) })
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || fd < 0 {
		return false
	}
	token, err := parking.park(fd, r.act.deadline(), func() {
		r.mu.Lock()
		r.parked[dir] = 0
		r.mu.Unlock()
		go r.spliceHalf(dir, dst, src, total, true)
	})
	if err != nil {
		return false
	}
	r.parked[dir] = token
	return true
}

// half copies src to dst, then ends the direction.
func (r *relay) half(dir int, dst, src io.ReadWriteCloser) {
	if p, ok := src.(*pendingConn); ok {
		// The chain's last replies come first on this side: check them,
		// then relay the conn underneath (which splices).
		if err := p.confirm(); err != nil {
			r.end(dir, dst, 0, err)
			return
		}
		src = p.Conn
	}
	if p, ok := dst.(*pendingConn); ok {
		dst = p.Conn // writes never wait for the replies
	}
	st, sok := src.(*net.TCPConn)
	dt, dok := dst.(*net.TCPConn)
	var n int64
	var err error
	switch sc, isConn := src.(net.Conn); {
	case sok && dok:
		r.spliceHalf(dir, dt, st, 0, false)
		return
	case r.act != nil && isConn:
		n, err = io.Copy(dst, &idleReader{c: sc, act: r.act})
	default:
		n, err = io.Copy(dst, src)
	}
	r.end(dir, dst, n, err)
}

// end finishes a direction: on success it half-closes dst so the other
// side sees EOF, on error it closes both so the other direction ends too.
// The last direction to end reports.
func (r *relay) end(dir int, dst io.ReadWriteCloser, n int64, err error) {
	halfClosed := false
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			halfClosed = cw.CloseWrite() == nil
		}
	}
	if !halfClosed {
		// An error, or dst cannot half-close: closing it whole is the only
		// way to pass EOF on.
		r.closeBoth()
	}
	r.n[dir], r.err[dir] = n, err
	if r.left.Add(-1) > 0 {
		return
	}
	r.stop()
	err = errors.Join(r.err[0], r.err[1])
	if r.ctx.Err() != nil {
		err = r.ctx.Err()
	}
	r.done(r.n[0], r.n[1], err)
}

// spliceHalf copies src to dst with splice(2) while data flows, and
// holds no pipe while it does not (see spliceCopy: a plain io.Copy
// between TCP conns keeps its pipe, 2 descriptors, for as long as it
// waits). The copy runs under a short read deadline, so activity is seen
// while data flows; when a whole window passes with nothing, the
// direction waits for more with no goroutine: parked (see parking), or,
// for RelayIdle, whose caller may close the conns, on a fresh goroutine,
// since the splice path has grown this one's stack (to 4-8 KiB) and a
// wait needs far less.
func (r *relay) spliceHalf(dir int, dst, src *net.TCPConn, total int64, resumed bool) {
	rc, err := src.SyscallConn()
	wc, werr := dst.SyscallConn()
	if err != nil || werr != nil {
		n, err := io.Copy(dst, src)
		r.end(dir, dst, total+n, err)
		return
	}
	act := r.act
	// Resumed at the idle deadline while the other direction was busy:
	// with nothing to read, park again until the new deadline rather than
	// wait for it here, on a goroutine.
	if resumed && act != nil && !act.expired() && !readable(rc) && r.park(dir, dst, src, total) {
		return
	}
	for {
		src.SetReadDeadline(act.deadline()) // zero (none) without an idle timeout
		eof, err := waitReadable(rc)
		if act != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			if act.expired() {
				r.end(dir, dst, total, ErrIdle)
				return
			}
			// The other direction was busy: wait again, parked if we can.
			if r.parkable && r.park(dir, dst, src, total) {
				return
			}
			continue
		}
		if err != nil || eof {
			r.end(dir, dst, total, err)
			return
		}
		act.touch() // now, not when the window closes: the other direction may be checking
		// The splice returns at least every window, so activity is seen
		// by the other direction's idle check while data flows; windows
		// follow one another until one passes with nothing to copy.
		window := spliceIdle
		if act != nil {
			window = min(window, act.idle/2)
		}
		for {
			src.SetReadDeadline(time.Now().Add(window))
			n, ok, err := spliceCopy(wc, rc)
			if !ok { // no splice here, or no pipe now
				var m int64
				m, err = io.Copy(dst, src)
				n += m
			}
			total += n
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				src.SetReadDeadline(time.Time{})
				r.end(dir, dst, total, err)
				return
			}
			if n == 0 {
				break
			}
			act.touch()
		}
		// A whole window with nothing: wait without a goroutine (until
		// the relay's idle deadline, if it has one), else on a fresh one.
		if r.parkable && r.park(dir, dst, src, total) {
			return
		}
		go r.spliceHalf(dir, dst, src, total, false)
		return
	}
}

// spliceIdle is how long a splice waits for more data before the direction
// goes idle (tests shorten it).
var spliceIdle = time.Second

// readable says, without waiting, whether rc has a byte to read (or an
// EOF or error to report).
func readable(rc syscall.RawConn) bool {
	ready := true
	rc.Control(func(fd uintptr) {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ready = err != syscall.EAGAIN
	})
	return ready
}

// waitReadable waits until rc has a byte to read, or has reached EOF.
func waitReadable(rc syscall.RawConn) (eof bool, err error) {
	var opErr error
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN:
			return false // nothing yet: let the poller wait
		case err != nil:
			opErr = err
		case n == 0:
			eof = true
		}
		return true
	})
	if err == nil {
		err = opErr
	}
	return eof, err
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
