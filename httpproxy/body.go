package httpproxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// stallGuard bounds each read of a request body: a client that stops
// sending mid-body is cut after the idle timeout instead of holding a
// goroutine and an upstream connection forever.
type stallGuard struct {
	conn net.Conn
	idle time.Duration
	r    io.ReadCloser
}

func (g *stallGuard) Read(p []byte) (int, error) {
	g.conn.SetReadDeadline(time.Now().Add(g.idle))
	return g.r.Read(p)
}

func (g *stallGuard) Close() error { return g.r.Close() }

// deadlineWriter bounds each write to a client that stops reading.
type deadlineWriter struct {
	conn net.Conn
	idle time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.conn.SetWriteDeadline(time.Now().Add(w.idle))
	return w.conn.Write(p)
}

// continueReader answers "Expect: 100-continue" the way an origin server
// would: "100 Continue" goes to the client when the body is first read,
// which the Transport does once the destination has said 100 itself.
type continueReader struct {
	c    *clientConn
	r    io.ReadCloser
	sent bool
}

func (cr *continueReader) Read(p []byte) (int, error) {
	if !cr.sent {
		cr.sent = true
		io.WriteString(cr.c.bw, "HTTP/1.1 100 Continue\r\n\r\n")
		if err := cr.c.bw.Flush(); err != nil {
			return 0, err
		}
	}
	return cr.r.Read(p)
}

func (cr *continueReader) Close() error { return cr.r.Close() }

func expectsContinue(req *http.Request) bool {
	return req.ProtoAtLeast(1, 1) && req.ContentLength != 0 &&
		strings.EqualFold(strings.TrimSpace(req.Header.Get("Expect")), "100-continue")
}

// flushBeforeRead flushes the response written so far before each read of
// the upstream body, so a streaming response reaches the client as it
// arrives while a fast one is still written in full buffers.
type flushBeforeRead struct {
	r io.ReadCloser
	w *bufio.Writer
}

func (f *flushBeforeRead) Read(p []byte) (int, error) {
	if f.w.Buffered() > 0 {
		if err := f.w.Flush(); err != nil {
			return 0, err
		}
	}
	return f.r.Read(p)
}

func (f *flushBeforeRead) Close() error { return f.r.Close() }

// maxDiscard bounds how much of an unread request body is skipped to keep
// a connection alive; beyond it, closing is cheaper.
const maxDiscard = 256 << 10

// bodyDone reads what is left of req's body and reports whether it ended
// cleanly, so the connection can carry the next request. A body the
// client still waits to be asked for (100-continue) is not asked for: the
// connection closes instead.
func bodyDone(req *http.Request) bool {
	if cr, ok := req.Body.(*continueReader); ok && !cr.sent {
		return false
	}
	n, err := io.Copy(io.Discard, io.LimitReader(req.Body, maxDiscard+1))
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
