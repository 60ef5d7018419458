package conns

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// Sniff splits ln by the first byte each client sends: SOCKS (4 or 5) to
// the first listener returned, anything else (HTTP) to the second. The
// byte is peeked with MSG_PEEK, not read, so each server gets the raw,
// untouched *net.TCPConn (and the relay can still splice). A client that
// sends nothing within timeout is closed. Closing both returned listeners
// closes ln.
func Sniff(ln net.Listener, timeout time.Duration) (socks, http net.Listener) {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	m := &sniffer{parent: ln, timeout: timeout, done: make(chan struct{})}
	m.socks = &childListener{m: m, conns: make(chan net.Conn), closed: make(chan struct{})}
	m.http = &childListener{m: m, conns: make(chan net.Conn), closed: make(chan struct{})}
	go m.accept()
	return m.socks, m.http
}

type sniffer struct {
	parent      net.Listener
	timeout     time.Duration
	socks, http *childListener

	mu   sync.Mutex
	open int // children not yet closed
	done chan struct{}
	err  error
}

func (m *sniffer) accept() {
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
			// Out of file descriptors and the like: wait, then go on.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		go m.route(c)
	}
}

// route peeks at c's first byte and hands c to the matching listener.
func (m *sniffer) route(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(m.timeout))
	b, err := peekByte(c)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return
	}
	to := m.http
	if b == 4 || b == 5 {
		to = m.socks
	}
	select {
	case to.conns <- c:
	case <-to.closed:
		c.Close()
	}
}

var errNotTCP = errors.New("sniffing needs a TCP connection")

// peekByte returns the first unread byte of c without consuming it.
func peekByte(c net.Conn) (byte, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0, errNotTCP
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var b [1]byte
	var n int
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		n, _, perr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
		return perr != syscall.EAGAIN // not ready yet: let the poller wait
	})
	switch {
	case err != nil:
		return 0, err
	case perr != nil:
		return 0, perr
	case n == 0:
		return 0, net.ErrClosed
	}
	return b[0], nil
}

// childListener is one side of a Sniff.
type childListener struct {
	m         *sniffer
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

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
		l.m.open++
		both := l.m.open == 2
		l.m.mu.Unlock()
		if both {
			l.m.parent.Close()
		}
	})
	return nil
}

func (l *childListener) Addr() net.Addr { return l.m.parent.Addr() }
