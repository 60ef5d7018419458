//go:build !portable

package chain

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A relay direction splices in windows: while bytes come, it stays in
// spliceCopy; once a whole window passes with nothing, it leaves it to
// wait elsewhere (parked, see parking). The end of a window used to be a
// read deadline armed for each burst, a runtime timer per direction per
// connection, and arming one wakes a thread (about 6 wake-ups of the
// chain's three processes per connection, measured; see BENCHMARKS.md).
// One sweep for the whole process ends them instead: every spliceIdle it
// looks at the directions splicing now, and ends the window of each that
// has moved nothing since the sweep before (by moving its read deadline
// to the past). A window therefore lasts one to two sweeps, and the sweep
// runs only while some direction splices.
var windows = windowSet{open: map[*window]struct{}{}}

type windowSet struct {
	mu    sync.Mutex
	open  map[*window]struct{}
	armed bool // a sweep is due
}

// window is one direction's time in spliceCopy.
type window struct {
	src    *net.TCPConn
	moved  atomic.Uint64 // splice calls that moved bytes
	counts *atomic.Int64 // the relay's live count for this direction, or nil
	act    *activity     // the relay's idle clock, or nil

	// The sweep's, under windows.mu:
	seen   uint64 // moved, at the last sweep
	fresh  bool   // entered since the last sweep: it has not had a whole one yet
	kicked bool   // the sweep ended it
}

// moving records n bytes moved by one splice call.
func (w *window) moving(n int) {
	if w == nil {
		return
	}
	w.moved.Add(1)
	if w.counts != nil {
		w.counts.Add(int64(n)) // one add per splice call, of up to a pipe's worth
	}
	w.act.touch() // now: the other direction may be checking for idleness
}

// enter puts w, which reads src, in the set.
func (s *windowSet) enter(w *window, src *net.TCPConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.src, w.fresh, w.kicked = src, true, false
	s.open[w] = struct{}{}
	if !s.armed {
		s.armed = true
		time.AfterFunc(spliceIdle, s.sweep)
	}
}

// leave takes w out of the set, and reports whether the sweep had ended
// it; then it clears the deadline that did it.
func (s *windowSet) leave(w *window) (kicked bool) {
	s.mu.Lock()
	delete(s.open, w)
	kicked = w.kicked
	s.mu.Unlock()
	if kicked {
		w.src.SetReadDeadline(time.Time{})
	}
	return kicked
}

// sweep ends the windows that moved nothing since the last sweep, and
// comes again while any is open.
func (s *windowSet) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.open {
		m := w.moved.Load()
		if w.fresh || m != w.seen {
			w.fresh, w.seen = false, m
			continue
		}
		w.kicked = true
		delete(s.open, w)
		w.src.SetReadDeadline(time.Unix(1, 0)) // its wait in spliceCopy ends now
	}
	if len(s.open) == 0 {
		s.armed = false
		return
	}
	time.AfterFunc(spliceIdle, s.sweep)
}
