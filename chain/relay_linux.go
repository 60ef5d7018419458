//go:build !portable

package chain

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/veilchain/veilchain/internal/conns"
)

// The relay's Linux speed-ups: a direction between two TCP conns splices
// with a pipe held only while bytes are in flight (splice_linux.go), and
// waits for more parked on epoll with no goroutine (park_linux.go). The
// portable direction (relay_other.go, and every build with -tags
// portable) is the copy loop of relay.go.

// parks are the parking tokens of a relay's directions parked now (0:
// not parked), guarded by relay.mu.
type parks [2]uint32

// tcpHalf relays a direction between two TCP conns: spliced, and parked
// while idle.
func (r *relay) tcpHalf(dir int, dst, src *net.TCPConn) {
	r.spliceHalf(dir, dst, src, 0, false)
}

// unparkAll takes any parked direction out of the parking lot (while the
// descriptors still name these sockets) and resumes it, so that it sees
// the close that follows and ends. closeBoth calls it once r.closed is
// set, so nothing parks after it.
func (r *relay) unparkAll() {
	r.mu.Lock()
	tokens := r.parks
	r.mu.Unlock()
	for _, t := range tokens {
		if t != 0 {
			parking.unpark(t)
		}
	}
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
		r.parks[dir] = 0
		r.mu.Unlock()
		go r.spliceHalf(dir, dst, src, total, true)
	})
	if err != nil {
		return false
	}
	r.parks[dir] = token
	return true
}

// spliceHalf copies src to dst with splice(2) while data flows, and
// holds no pipe while it does not (see spliceCopy: a plain io.Copy
// between TCP conns keeps its pipe, 2 descriptors, for as long as it
// waits). It splices in windows (see windows): when a whole window
// passes with nothing, the direction waits for more with no goroutine:
// parked (see parking), or, for RelayIdle, whose caller may close the
// conns, on a fresh goroutine (waitHalf), since the splice path has grown
// this one's stack (to 4-8 KiB) and a wait needs far less. A direction
// waits for its first byte the same way: in a window, then parked.
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
	w := &window{counts: r.live(dir), act: act}
	for {
		src.SetReadDeadline(act.deadline()) // the relay's idle timeout; zero (none) without one
		windows.enter(w, src)
		n, ok, err := spliceCopy(wc, rc, w)
		// spliceCopy added n to the counts as it went.
		r.counted[dir] += n
		if !ok { // no splice here, or no pipe now
			var m int64
			m, err = io.Copy(dst, src)
			n += m
			r.count(dir, m)
		}
		kicked := windows.leave(w)
		total += n
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			r.end(dir, dst, total, err)
			return
		}
		if act != nil && act.expired() {
			r.end(dir, dst, total, ErrIdle)
			return
		}
		if !kicked || !ok && n > 0 {
			// The idle deadline passed while the other direction was
			// busy, or the copy that stood in for splice (which the sweep
			// cannot see) moved bytes.
			continue
		}
		// A whole window with nothing: wait without a goroutine (until
		// the relay's idle deadline, if it has one), else on a fresh one.
		if r.parkable && r.park(dir, dst, src, total) {
			return
		}
		go r.waitHalf(dir, dst, src, total)
		return
	}
}

// waitHalf waits, on its own goroutine, for src to have bytes again (or
// for the relay's idle deadline), then splices them: how a direction that
// cannot park waits.
func (r *relay) waitHalf(dir int, dst, src *net.TCPConn, total int64) {
	rc, err := src.SyscallConn()
	if err != nil {
		r.end(dir, dst, total, err)
		return
	}
	act := r.act
	for {
		src.SetReadDeadline(act.deadline()) // zero (none) without an idle timeout
		eof, err := waitReadable(rc)
		if act != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			if act.expired() {
				r.end(dir, dst, total, ErrIdle)
				return
			}
			continue // the other direction was busy
		}
		if err != nil || eof {
			r.end(dir, dst, total, err)
			return
		}
		r.spliceHalf(dir, dst, src, total, false)
		return
	}
}

// spliceIdle is how long a splice window lasts with nothing moved: the
// sweep (window_linux.go) ends it 1 to 1.25 of these after its last byte
// (tests shorten it).
var spliceIdle = time.Second

// readable says, without waiting, whether rc has a byte to read (or an
// EOF or error to report).
func readable(rc syscall.RawConn) bool {
	var b [1]byte
	_, err := conns.PeekRaw(rc, b[:], false)
	return err != syscall.EAGAIN
}

// waitReadable waits until rc has a byte to read, or has reached EOF.
func waitReadable(rc syscall.RawConn) (eof bool, err error) {
	var b [1]byte
	_, err = conns.PeekRaw(rc, b[:], true)
	if err == io.EOF {
		return true, nil
	}
	return false, err
}

// live is where direction dir counts as it splices, or nil.
func (r *relay) live(dir int) *atomic.Int64 {
	if r.counts == nil {
		return nil
	}
	return &r.counts[dir]
}
