//go:build !portable

package chain

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A relay direction splices in windows: while bytes come, it stays in
// spliceCopy; once a whole window (spliceIdle) passes with nothing, it
// leaves it to wait elsewhere (parked, see parking). The end of a window
// used to be a read deadline armed for each burst, a runtime timer per
// direction per connection, and arming one wakes a thread (about 6
// wake-ups of the chain's three processes per connection, measured; see
// BENCHMARKS.md). One sweep for the whole process ends them instead:
// every quarter window it looks at the directions splicing now, and ends
// the window of each that has moved nothing for a whole one (by moving
// its read deadline to the past). A window therefore ends 1 to 1.25
// spliceIdle after its last byte (0.75 to 1 after it opened, if none
// came), and the sweep runs only while some direction splices.
var windows windowSet

// sweepsPerWindow is how many sweeps a window that moves nothing lasts.
const sweepsPerWindow = 4

type windowSet struct {
	mu    sync.Mutex
	head  *window // the open windows, a list through window.next
	armed bool    // a sweep is due
}

// window is one direction's time in spliceCopy.
type window struct {
	src    *net.TCPConn
	moved  atomic.Uint64 // splice calls that moved bytes
	counts *atomic.Int64 // the relay's live count for this direction, or nil
	act    *activity     // the relay's idle clock, or nil

	// The sweep's, under windows.mu:
	prev, next *window
	open       bool
	seen       uint64 // moved, at the last sweep
	still      int    // sweeps in a row that saw nothing moved
	kicked     bool   // the sweep ended it
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

// enter opens w, which reads src.
func (s *windowSet) enter(w *window, src *net.TCPConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.src, w.seen, w.still, w.kicked = src, w.moved.Load(), 0, false
	s.link(w)
	if !s.armed {
		s.armed = true
		time.AfterFunc(spliceIdle/sweepsPerWindow, s.sweep)
	}
}

// leave closes w, and reports whether the sweep had ended it; then it
// clears the deadline that did it.
func (s *windowSet) leave(w *window) (kicked bool) {
	s.mu.Lock()
	s.unlink(w)
	kicked = w.kicked
	s.mu.Unlock()
	if kicked {
		w.src.SetReadDeadline(time.Time{})
	}
	return kicked
}

// sweep ends the windows that moved nothing for a whole window, and comes
// again while any is open.
func (s *windowSet) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := s.head; w != nil; {
		next := w.next
		if m := w.moved.Load(); m != w.seen {
			w.seen, w.still = m, 0
		} else if w.still++; w.still >= sweepsPerWindow {
			w.kicked = true
			s.unlink(w)
			w.src.SetReadDeadline(time.Unix(1, 0)) // its wait in spliceCopy ends now
		}
		w = next
	}
	if s.head == nil {
		s.armed = false
		return
	}
	time.AfterFunc(spliceIdle/sweepsPerWindow, s.sweep)
}

// link and unlink add w to the list and take it out; s.mu is held.
func (s *windowSet) link(w *window) {
	w.prev, w.next, w.open = nil, s.head, true
	if s.head != nil {
		s.head.prev = w
	}
	s.head = w
}

func (s *windowSet) unlink(w *window) {
	if !w.open {
		return
	}
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		s.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	}
	w.prev, w.next, w.open = nil, nil, false
}
