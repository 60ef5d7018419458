package conns

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Route decides where one accepted conn goes: it returns the conn to hand
// on (c itself, or a conn layered on it) and the index of the listener
// that gets it, or a negative index to drop it (Route has closed it).
// It runs on a goroutine of its own per conn, under a deadline.
type Route func(c net.Conn) (net.Conn, int)

// Split accepts on ln and hands each conn, as route decides, to one of n
// listeners. route gets timeout to decide: the conn's deadline is set
// before it runs and cleared after. Closing all n listeners closes ln.
// log, if not nil, hears of accept failures.
func Split(ln net.Listener, n int, timeout time.Duration, route Route, log *slog.Logger) []net.Listener {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	m := &splitter{parent: ln, timeout: timeout, route: route, log: log, done: make(chan struct{})}
	out := make([]net.Listener, n)
	for i := range n {
		m.children = append(m.children, &childListener{m: m, conns: make(chan net.Conn), closed: make(chan struct{})})
		out[i] = m.children[i]
	}
	go m.accept()
	return out
}

type splitter struct {
	parent   net.Listener
	timeout  time.Duration
	route    Route
	log      *slog.Logger
	children []*childListener

	mu     sync.Mutex
	closed int // children closed so far
	done   chan struct{}
	err    error
}

func (m *splitter) accept() {
	defer close(m.done)
	var backoff time.Duration
	for {
		c, err := m.parent.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				m.mu.Lock()
				m.err = err
				m.mu.Unlock()
				return
			}
			backoff = acceptFailed(m.log, err, backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		go m.hand(c)
	}
}

// hand routes c and passes it to the listener route chose. It ends when
// that listener takes c, or is closed.
func (m *splitter) hand(c net.Conn) {
	c.SetDeadline(time.Now().Add(m.timeout))
	out, i := m.route(c)
	if i < 0 {
		return
	}
	c.SetDeadline(time.Time{})
	to := m.children[i]
	if serve := to.direct.Load(); serve != nil && (*serve)(out) {
		return
	}
	select {
	case to.conns <- out:
	case <-to.closed:
		out.Close()
	}
}

// childListener is one of a Split's listeners.
type childListener struct {
	m         *splitter
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
	// direct, once a Group serves this listener, runs the Group's handler
	// for a conn on the goroutine that routed it, instead of handing the
	// conn to the Group's accept loop to start one more: a hand-off and a
	// goroutine fewer per connection. It reports false when the Group
	// takes no more conns (then Accept reports why).
	direct atomic.Pointer[func(net.Conn) bool]
}

// serveDirect makes conns routed here go straight to serve (see direct).
func (l *childListener) serveDirect(serve func(net.Conn) bool) { l.direct.Store(&serve) }

func (l *childListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-l.m.done:
		l.m.mu.Lock()
		defer l.m.mu.Unlock()
		return nil, l.m.err
	}
}

func (l *childListener) Close() error {
	l.closeOnce.Do(func() {
		close(l.closed)
		l.m.mu.Lock()
		l.m.closed++
		all := l.m.closed == len(l.m.children)
		l.m.mu.Unlock()
		if all {
			l.m.parent.Close()
		}
	})
	return nil
}

func (l *childListener) Addr() net.Addr { return l.m.parent.Addr() }
