package chain

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/veilchain/veilchain/internal/conns"
)

// HTTPConnect is an HTTP proxy hop that tunnels with CONNECT (RFC 9110
// section 9.3.6), with Basic auth when User is set, over TLS to the proxy
// itself when TLS is set (https://).
type HTTPConnect struct {
	Address  string
	User     string
	Password string
	TLS      *tls.Config
	// Pipeline lets the next hop's handshake, or the client's first bytes,
	// follow the CONNECT request before the answer (?pipeline=1, plain
	// http:// only): the proxy must read just the request head and relay
	// the rest once connected.
	Pipeline bool
	// Pin is the pin TLS checks, if any (https://...?pin=).
	Pin string
	// Timeout bounds this hop's handshake (0: the chain's).
	Timeout time.Duration
}

// Addr returns the proxy's host:port.
func (h *HTTPConnect) Addr() string { return h.Address }

// HandshakeTimeout is this hop's own handshake timeout, if any.
func (h *HTTPConnect) HandshakeTimeout() time.Duration { return h.Timeout }

// Connect asks the proxy to open a tunnel to addr. The name in addr goes
// to the proxy as a name.
func (h *HTTPConnect) Connect(ctx context.Context, conn net.Conn, addr string) (net.Conn, error) {
	c := conn
	if h.TLS != nil {
		tc, err := startLayer(ctx, conn, h.TLS)
		if err != nil {
			return nil, err
		}
		c = tc
	}
	if _, err := io.WriteString(c, h.request(addr)); err != nil {
		return nil, err
	}
	if h.pipelines() {
		// Read the answer exactly, as when it is read after a batch.
		if err := h.readReplies(c); err != nil {
			return nil, err
		}
		return c, nil
	}
	// A hostile hop could send an endless head: 64 KiB is plenty.
	limited := &io.LimitedReader{R: c, N: maxResponseHead}
	br := bufio.NewReaderSize(limited, 4096)
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			// %w twice: a read that timed out must still read as a timeout.
			return nil, fmt.Errorf("%w: reading CONNECT response: %w", ErrProtocol, err)
		}
		// Interim 1xx answers come before the final one (RFC 9110 section 15.2).
		if resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		if err := connectStatus(resp); err != nil {
			return nil, err
		}
		break
	}
	// Bytes that came with the response belong to the tunnel (a server
	// that speaks first). Only then is the conn wrapped, losing splice.
	if n := br.Buffered(); n > 0 {
		early, _ := br.Peek(n)
		return &conns.PrefixConn{Conn: c, Prefix: append([]byte(nil), early...)}, nil
	}
	return c, nil
}

// request is the CONNECT request head for addr. A pipelined one asks the
// proxy to close after a refusal, rather than read what we queued behind
// the request (the next hop's handshake, or the client's first bytes) as
// a request of its own.
func (h *HTTPConnect) request(addr string) string {
	req := "CONNECT " + addr + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	if h.User != "" {
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(h.User+":"+h.Password)) + "\r\n"
	}
	if h.pipelines() {
		req += "Connection: close\r\n"
	}
	return req + "\r\n"
}

// connectStatus maps a final CONNECT answer to the chain's errors.
func connectStatus(resp *http.Response) error {
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusProxyAuthRequired:
		return fmt.Errorf("%w: %s", ErrHopAuth, resp.Status)
	case code == http.StatusForbidden || code == http.StatusMethodNotAllowed:
		return fmt.Errorf("CONNECT answered %s: %w", resp.Status, &ReplyError{Code: 0x02})
	case code == http.StatusGatewayTimeout:
		return fmt.Errorf("CONNECT answered %s: %w", resp.Status, &ReplyError{Code: 0x06})
	case code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusNotFound:
		return fmt.Errorf("CONNECT answered %s: %w", resp.Status, &ReplyError{Code: 0x04})
	default:
		return fmt.Errorf("CONNECT answered %s: %w", resp.Status, &ReplyError{Code: 0x01})
	}
}

func (h *HTTPConnect) pipelines() bool { return h.Pipeline && h.TLS == nil }

func (h *HTTPConnect) handshakeBytes(_ context.Context, addr string) ([]byte, error) {
	return []byte(h.request(addr)), nil
}

// readReplies reads the answers to a CONNECT, 1xx ones included, head by
// head and not a byte further: what follows belongs to the next hop.
func (h *HTTPConnect) readReplies(conn net.Conn) error {
	budget := maxResponseHead
	peekBuf := make([]byte, 4096)
	for {
		head, err := readHead(conn, budget, peekBuf)
		if err != nil {
			return fmt.Errorf("reading CONNECT response: %w", err)
		}
		budget -= len(head)
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), &http.Request{Method: http.MethodConnect})
		if err != nil {
			return fmt.Errorf("%w: reading CONNECT response: %v", ErrProtocol, err)
		}
		if resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		return connectStatus(resp)
	}
}

// readHead reads one response head, through its empty line, and nothing
// after it, in at most limit bytes. It peeks (into buf) when it can (a
// socket, where conns.Peek works), so that a head costs a read or two,
// and reads a byte at a time otherwise: some 40 reads for a usual answer,
// once per pipelined hop. Lines may end in CRLF or, as net/http allows, a bare LF.
func readHead(conn net.Conn, limit int, buf []byte) ([]byte, error) {
	head := make([]byte, 0, 128)
	canPeek := true
	for {
		if len(head) >= limit {
			return nil, fmt.Errorf("%w: response head over %d bytes", ErrProtocol, maxResponseHead)
		}
		want := 1
		if canPeek {
			// How much of what is queued belongs to this head.
			peeked, ok, err := peekInto(conn, buf[:min(len(buf), limit-len(head))])
			switch {
			case !ok:
				canPeek = false
			case err != nil:
				return nil, err
			default:
				want = len(peeked)
				if i := headEnd(head, peeked); i >= 0 {
					want = i
				}
			}
		}
		head = slices.Grow(head, want)
		if _, err := io.ReadFull(conn, head[len(head):len(head)+want]); err != nil {
			return nil, err
		}
		head = head[:len(head)+want]
		// Nothing past an end is ever read, so an end is at the end.
		if bytes.HasSuffix(head, []byte("\n\n")) || bytes.HasSuffix(head, []byte("\n\r\n")) {
			return head, nil
		}
	}
}

// headEnd is how many bytes of next complete the head that head starts,
// or -1. The head ends at its first empty line, CRLF or bare LF.
func headEnd(head, next []byte) int {
	// The end may straddle head and next: look from up to 2 bytes back.
	back := min(2, len(head))
	joined := append(append([]byte(nil), head[len(head)-back:]...), next...)
	end := -1
	if i := bytes.Index(joined, []byte("\n\n")); i >= 0 {
		end = i + 2
	}
	if i := bytes.Index(joined, []byte("\n\r\n")); i >= 0 && (end < 0 || i+3 < end) {
		end = i + 3
	}
	if end < 0 {
		return -1
	}
	return end - back
}

// peekInto waits for bytes on conn and returns up to len(buf) of them,
// in buf, leaving them queued. ok is false when conn cannot be peeked at
// (not a socket, or no peeking on this platform: see conns.Peek).
func peekInto(conn net.Conn, buf []byte) (peeked []byte, ok bool, err error) {
	n, err := conns.Peek(conn, buf)
	switch {
	case errors.Is(err, conns.ErrNoPeek):
		return nil, false, nil
	case err == io.EOF:
		return nil, true, io.ErrUnexpectedEOF
	case err != nil:
		return nil, true, err
	}
	return buf[:n], true, nil
}

const maxResponseHead = 64 << 10
