package httpproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veilchain/veilchain/internal/conns"
)

// clientBody is a request body on its way to the destination. The
// Transport reads it from its own goroutine, so what the request's
// goroutine needs to know afterwards is kept behind a lock.
//
// It answers "Expect: 100-continue" the way an origin server would: "100
// Continue" goes to the client when the body is first read, which the
// Transport does once the destination has said 100 itself, and never once
// the final response has begun.
type clientBody struct {
	c      *clientConn
	r      io.ReadCloser // the framed body (lengthBody or chunkedBody)
	idle   *watchdog
	expect bool

	mu   sync.Mutex
	eof  bool
	cerr error // the first error reading from the client
}

var errNoContinue = errors.New("final response already begun: body not requested")

func (b *clientBody) Read(p []byte) (int, error) {
	if b.expect {
		b.expect = false
		b.c.wmu.Lock()
		if b.c.finalStarted {
			b.c.wmu.Unlock()
			return 0, errNoContinue
		}
		io.WriteString(b.c.bw, "HTTP/1.1 100 Continue\r\n\r\n")
		err := b.c.bw.Flush()
		b.c.wmu.Unlock()
		if err != nil {
			return 0, b.fail(err)
		}
	}
	// A client that stops sending mid-body is cut after the idle timeout.
	b.c.conn.SetReadDeadline(time.Now().Add(b.c.srv.idleTimeout()))
	n, err := b.r.Read(p)
	b.idle.touch()
	switch {
	case errors.Is(err, io.EOF):
		b.mu.Lock()
		b.eof = true
		b.mu.Unlock()
	case err != nil:
		return n, b.fail(err)
	}
	return n, err
}

func (b *clientBody) fail(err error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cerr == nil {
		b.cerr = err
	}
	return err
}

// Close is a no-op: the client's connection outlives its request.
func (b *clientBody) Close() error { return nil }

// finished reports whether the body was read to its end.
func (b *clientBody) finished() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eof && b.cerr == nil
}

func (b *clientBody) clientErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cerr
}

// maxPrefetch bounds how much of a request body is read before the chain
// is dialled.
const maxPrefetch = 64 << 10

// prefetchBody reads the start of a request body before anything goes
// onward. A body of known length up to maxPrefetch is read whole (waiting
// up to the idle timeout). Of any other, the first read waits for the
// body to begin, which checks the first chunk header of a chunked body;
// then it takes what the client has already sent, up to maxPrefetch,
// without waiting for more. complete says the whole body was read, so it
// can go out with its length known. What is not read yet streams later,
// and a fault found there can only cut the request short, never make a
// whole one of it: the destination sees an unfinished body.
func (c *clientConn) prefetchBody(body io.Reader, length int64) (start []byte, complete bool, err error) {
	c.conn.SetReadDeadline(time.Now().Add(c.srv.idleTimeout()))
	defer c.conn.SetReadDeadline(time.Time{})
	wantAll := length > 0 && length <= maxPrefetch
	buf := make([]byte, 0, 4<<10)
	if wantAll {
		buf = make([]byte, 0, length+1) // +1: room to read the EOF
	}
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= maxPrefetch {
				return buf, false, nil
			}
			buf = slices.Grow(buf, min(len(buf), maxPrefetch-len(buf)))
		}
		p := buf[len(buf):cap(buf)]
		if !wantAll && len(buf) > 0 {
			p = p[:min(len(p), c.br.Buffered())] // what is here already, no more
		}
		n, err := body.Read(p)
		buf = buf[:len(buf)+n]
		switch {
		case errors.Is(err, io.EOF):
			return buf, true, nil
		case err != nil:
			return nil, false, err
		case !wantAll && c.br.Buffered() == 0:
			return buf, false, nil // the rest is not here yet: it streams
		}
	}
}

// bodyError is the answer to a client whose request body failed: 408 if
// it stalled, 400 if it was malformed or cut short.
func bodyError(err error) error {
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return &statusError{http.StatusRequestTimeout, "request body not received in time"}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &statusError{http.StatusBadRequest, "request body incomplete"}
	}
	return &statusError{http.StatusBadRequest, "malformed request body"}
}

// watchdog cancels a request that makes no progress for its duration.
type watchdog struct {
	d      time.Duration
	t      *time.Timer
	hasRun atomic.Bool
}

func newWatchdog(d time.Duration, cancel func()) *watchdog {
	w := &watchdog{d: d}
	w.t = time.AfterFunc(d, func() {
		w.hasRun.Store(true)
		cancel()
	})
	return w
}

func (w *watchdog) touch()      { w.t.Reset(w.d) }
func (w *watchdog) stop()       { w.t.Stop() }
func (w *watchdog) fired() bool { return w.hasRun.Load() }

// deadlineWriter bounds each write to a client that stops reading.
type deadlineWriter struct {
	conn net.Conn
	idle time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.conn.SetWriteDeadline(time.Now().Add(w.idle))
	return w.conn.Write(p)
}

func expectsContinue(req *http.Request) bool {
	return req.ProtoAtLeast(1, 1) && req.ContentLength != 0 &&
		strings.EqualFold(strings.TrimSpace(req.Header.Get("Expect")), "100-continue")
}

// flushBeforeRead flushes the response written so far before each read of
// the upstream body, so a streaming response reaches the client as it
// arrives while a fast one is still written in full buffers.
type flushBeforeRead struct {
	r    io.ReadCloser
	w    *bufio.Writer
	idle *watchdog
}

func (f *flushBeforeRead) Read(p []byte) (int, error) {
	if f.w.Buffered() > 0 {
		if err := f.w.Flush(); err != nil {
			return 0, err
		}
	}
	n, err := f.r.Read(p)
	f.idle.touch()
	return n, err
}

func (f *flushBeforeRead) Close() error { return f.r.Close() }

// upgraded is a WebSocket stream: the Transport's upgraded body, which
// holds bytes it already buffered, with half-close through the chain's conn.
type upgraded struct {
	io.ReadWriteCloser
	conn net.Conn
}

// CloseWrite half-closes the chain's conn, or, when it cannot, closes the
// stream whole: the only other way to pass EOF on.
func (u *upgraded) CloseWrite() error {
	if err := conns.CloseWrite(u.conn); !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return u.Close()
}

// maxDiscard bounds how much of an unwanted request body is skipped to
// keep a connection alive; beyond it, closing is cheaper.
const maxDiscard = 256 << 10

// drain reads what is left of a body that goes nowhere and reports
// whether it ended cleanly, so the connection can carry the next request.
func drain(conn net.Conn, body io.Reader, idle time.Duration) bool {
	conn.SetReadDeadline(time.Now().Add(idle))
	defer conn.SetReadDeadline(time.Time{})
	n, err := io.Copy(io.Discard, io.LimitReader(body, maxDiscard+1))
	return err == nil && n <= maxDiscard
}

// removeHopByHop drops the hop-by-hop headers of a response.
func removeHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		h.Del(name)
	}
}
