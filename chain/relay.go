package chain

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veilchain/veilchain/internal/conns"
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
// them. Nobody has to wait in the meantime, and on Linux a direction
// between TCP conns that has carried nothing for a whole splice window
// (see windows: about a second), from its start or since its last byte,
// waits with no goroutine at all (see parking), until data comes or the
// idle deadline passes: an idle relayed connection costs its sockets and
// a little heap. (It is not parked at once: that would put the watcher
// on the first byte's path.) Elsewhere, and with -tags portable, each
// direction waits on its goroutine.
func StartRelay(ctx context.Context, a, b io.ReadWriteCloser, idle time.Duration, done func(aToB, bToA int64, err error)) {
	startRelay(ctx, a, b, idle, true, done)
}

func startRelay(ctx context.Context, a, b io.ReadWriteCloser, idle time.Duration, parkable bool, done func(aToB, bToA int64, err error)) {
	r := &relay{ctx: ctx, a: a, b: b, done: done, parkable: parkable, counts: countsFrom(ctx)}
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
	counts   *Counts      // from ctx (WithCounts), or nil
	counted  [2]int64     // what each direction has added to counts so far
	err      [2]error

	mu     sync.Mutex
	closed bool // closeBoth has run: park no more
	parks       // the directions parked now (relay_linux.go; none elsewhere)
}

// closeBoth closes both conns, first resuming any parked direction (see
// unparkAll), so that it sees the close and ends.
func (r *relay) closeBoth() { r.shut(false) }

// abortBoth is closeBoth with a reset on each TCP conn underneath (see
// conns.Abort).
func (r *relay) abortBoth() { r.shut(true) }

func (r *relay) shut(abort bool) {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.unparkAll()
	if abort {
		conns.Abort(r.a)
		conns.Abort(r.b)
	}
	r.a.Close()
	r.b.Close()
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
	if sok && dok {
		r.tcpHalf(dir, dt, st) // spliced and parked where that exists
		return
	}
	r.copyHalf(dir, dst, src)
}

// copyHalf is the portable direction: io.Copy (which splices between TCP
// conns on Linux, with a pipe held for the whole call), under the idle
// deadline when there is one.
func (r *relay) copyHalf(dir int, dst, src io.ReadWriteCloser) {
	var n int64
	var err error
	var w io.Writer = dst
	if r.counts != nil {
		// Live counts, one add per write: what a status view shows of a
		// connection while it lasts. (This hides dst's ReadFrom, which
		// only splicing between TCP conns would use, and those go to
		// tcpHalf on Linux.)
		w = &countingWriter{w: dst, r: r, dir: dir}
	}
	if sc, isConn := src.(net.Conn); r.act != nil && isConn {
		n, err = io.Copy(w, &idleReader{c: sc, act: r.act})
	} else {
		n, err = io.Copy(w, src)
	}
	r.end(dir, dst, n, err)
}

// countingWriter adds what each write carries to its relay's counts.
type countingWriter struct {
	w   io.Writer
	r   *relay
	dir int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.r.count(c.dir, int64(n))
	return n, err
}

// end finishes a direction: on success it half-closes dst so the other
// side sees EOF, on error it resets both so the other direction ends too
// and neither peer takes the cut for a complete stream (a download cut
// short by a reset upstream reaches the client as a reset, hop by hop).
// The idle timeout closes both plainly: nothing was in flight.
// The last direction to end reports.
func (r *relay) end(dir int, dst io.ReadWriteCloser, n int64, err error) {
	switch {
	case errors.Is(err, ErrIdle):
		r.closeBoth() // our own timeout, with nothing in flight: a plain end
	case err != nil:
		r.abortBoth()
	case conns.CloseWrite(dst) != nil:
		// dst cannot half-close: closing it whole is the only way to pass
		// EOF on.
		r.closeBoth()
	}
	r.count(dir, n-r.counted[dir])
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

// count adds n bytes of direction dir to the relay's Counts, if any:
// once per copy call, never per byte.
func (r *relay) count(dir int, n int64) {
	if r.counts != nil && n != 0 {
		r.counts[dir].Add(n)
		r.counted[dir] += n
	}
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
