package conns

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Sniff splits ln by the first byte each client sends: SOCKS (4 or 5) to
// the first listener returned, anything else (HTTP) to the second. Where
// the relay splices (Linux) the byte is peeked with MSG_PEEK, not read, so
// each server gets the raw, untouched *net.TCPConn; elsewhere it is read
// and handed back in front of the stream (a *PrefixConn). A client that
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
	b, c, err := firstByte(c)
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

// firstByte returns c's first byte, and the conn that still starts with
// it: c itself when the byte could be peeked at, else c behind the byte.
func firstByte(c net.Conn) (byte, net.Conn, error) {
	var b [1]byte
	_, err := Peek(c, b[:])
	if errors.Is(err, ErrNoPeek) {
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return 0, c, err
		}
		return b[0], &PrefixConn{Conn: c, Prefix: b[:]}, nil
	}
	return b[0], c, err
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
