//go:build !portable

package chain

import (
	"container/heap"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// parking holds relay directions that have nothing to copy, with no
// goroutine of their own: their sockets sit in an epoll set that one
// goroutine waits on, and a direction starts again, on a fresh goroutine,
// when its socket becomes readable or hangs up. An idle relayed
// connection then costs its sockets and a few KiB of heap (3.7-6.3 KiB
// of RSS in all, measured), not two goroutine stacks of 4 KiB on top:
// this is where most of a front end's connections spend most of their
// time.
//
// The watching goroutine exists only while something is parked. The set
// is level-triggered and one-shot, so a byte that arrived before the
// socket was added still wakes it, and each wake-up happens once. A
// direction may also be parked until a deadline (a relay's idle timeout),
// when it is resumed to see whether the relay as a whole is idle.
var parking = parkingLot{epfd: -1, wakefd: -1, waiting: map[uint32]*parked{}}

type parkingLot struct {
	mu        sync.Mutex
	epfd      int // -1 until first use
	wakefd    int // an eventfd that wakes the watcher: nothing left, or an earlier deadline
	waiting   map[uint32]*parked
	deadlines deadlineHeap // the waiting entries that have a deadline, earliest first
	next      uint32
	running   bool      // the watcher goroutine is up
	wakeAt    time.Time // when the watcher's wait ends by itself (zero: never)
}

type parked struct {
	fd       int
	deadline time.Time // zero: none
	resume   func()
	token    uint32
	index    int // in deadlines, or -1
}

// park adds fd to the set and calls resume, once, when fd becomes
// readable or hangs up, when deadline (if not zero) passes, or when
// unpark is called with the token returned. On error (no epoll here, say)
// nothing is parked and the caller waits as it would have.
func (l *parkingLot) park(fd int, deadline time.Time, resume func()) (token uint32, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.epfd < 0 {
		if err := l.open(); err != nil {
			return 0, err
		}
	}
	for l.next++; l.next == 0 || l.waiting[l.next] != nil; l.next++ {
		// 0 is the eventfd's; after a wrap, skip tokens still parked
	}
	token = l.next
	// The event's data carries the token, not fd: a descriptor number is
	// reused as soon as it is closed.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(token)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return 0, err
	}
	p := &parked{fd: fd, deadline: deadline, resume: resume, token: token, index: -1}
	l.waiting[token] = p
	if !deadline.IsZero() {
		heap.Push(&l.deadlines, p)
		if l.running && (l.wakeAt.IsZero() || deadline.Before(l.wakeAt)) {
			l.wake() // it sleeps past this deadline
		}
	}
	if !l.running {
		l.running = true
		go l.watch()
	}
	return token, nil
}

// wake makes the watcher's wait return; l.mu is held.
func (l *parkingLot) wake() {
	unix.Write(l.wakefd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
}

// open creates the epoll set and the eventfd in it; l.mu is held.
func (l *parkingLot) open() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: 0} // token 0 is the eventfd
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return err
	}
	l.epfd, l.wakefd = epfd, wakefd
	return nil
}

// unpark resumes token's direction now, if it is still parked. It must be
// called before the parked socket is closed: the socket leaves the set
// here, while its descriptor number still names it.
func (l *parkingLot) unpark(token uint32) {
	l.mu.Lock()
	p := l.take(token)
	if len(l.waiting) == 0 && l.running {
		l.wake() // let the watcher see it is done
	}
	l.mu.Unlock()
	if p != nil {
		p.resume()
	}
}

// take removes token from the set; l.mu is held.
func (l *parkingLot) take(token uint32) *parked {
	p := l.waiting[token]
	if p == nil {
		return nil
	}
	delete(l.waiting, token)
	if p.index >= 0 {
		heap.Remove(&l.deadlines, p.index)
	}
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, p.fd, nil)
	return p
}

// watch resumes parked directions as their sockets wake or their
// deadlines pass, and ends when none is left.
func (l *parkingLot) watch() {
	events := make([]unix.EpollEvent, 64)
	var ready []*parked
	l.mu.Lock()
	for {
		timeout := -1
		l.wakeAt = time.Time{}
		if len(l.deadlines) > 0 {
			l.wakeAt = l.deadlines[0].deadline
			// Round up, never early; and the kernel takes an int32.
			timeout = int(min(max(0, time.Until(l.wakeAt).Milliseconds()+1), 1<<30))
		}
		l.mu.Unlock()
		n, err := unix.EpollWait(l.epfd, events, timeout)
		if err != nil {
			n = 0 // EINTR; nothing else can happen with a valid set, and unpark still works
		}
		l.mu.Lock()
		for i := range n {
			token := uint32(events[i].Fd)
			if token == 0 {
				var b [8]byte
				unix.Read(l.wakefd, b[:])
				continue
			}
			if p := l.take(token); p != nil {
				ready = append(ready, p)
			}
		}
		now := time.Now()
		for len(l.deadlines) > 0 && !l.deadlines[0].deadline.After(now) {
			ready = append(ready, l.take(l.deadlines[0].token))
		}
		done := len(l.waiting) == 0
		if done {
			l.running = false
		}
		l.mu.Unlock()
		for i, p := range ready {
			p.resume()
			ready[i] = nil
		}
		ready = ready[:0]
		if done {
			return
		}
		l.mu.Lock()
	}
}

// deadlineHeap keeps the earliest deadline first (container/heap), and
// each entry's index, so that one taken early leaves at once.
type deadlineHeap []*parked

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *deadlineHeap) Push(x any) {
	p := x.(*parked)
	p.index = len(*h)
	*h = append(*h, p)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	p.index = -1
	return p
}
