package chain

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
)

// HTTPConnect is an HTTP proxy hop that tunnels with CONNECT (RFC 9110
// section 9.3.6), with Basic auth when User is set, over TLS to the proxy
// itself when TLS is set (https://).
type HTTPConnect struct {
	Address  string
	User     string
	Password string
	TLS      *tls.Config
}

// Addr returns the proxy's host:port.
func (h *HTTPConnect) Addr() string { return h.Address }

// Connect asks the proxy to open a tunnel to addr. The name in addr goes
// to the proxy as a name.
func (h *HTTPConnect) Connect(ctx context.Context, conn net.Conn, addr string) (net.Conn, error) {
	c := conn
	if h.TLS != nil {
		tc := tls.Client(conn, h.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS to the proxy: %w", err)
		}
		c = tc
	}
	req := "CONNECT " + addr + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	if h.User != "" {
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(h.User+":"+h.Password)) + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		return nil, err
	}
	// A hostile hop could send an endless head: 64 KiB is plenty.
	limited := &io.LimitedReader{R: c, N: maxResponseHead}
	br := bufio.NewReaderSize(limited, 4096)
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			return nil, fmt.Errorf("%w: reading CONNECT response: %v", ErrProtocol, err)
		}
		// Interim 1xx answers come before the final one (RFC 9110 section 15.2).
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
	case code == http.StatusProxyAuthRequired:
		return nil, fmt.Errorf("%w: %s", ErrHopAuth, resp.Status)
	case code == http.StatusForbidden || code == http.StatusMethodNotAllowed:
		return nil, fmt.Errorf("CONNECT answered %s: %w", resp.Status, &ReplyError{Code: 0x02})
	case code == http.StatusGatewayTimeout:
		return nil, fmt.Errorf("CONNECT answered %s: %w", resp.Status, &ReplyError{Code: 0x06})
	case code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusNotFound:
		return nil, fmt.Errorf("CONNECT answered %s: %w", resp.Status, &ReplyError{Code: 0x04})
	default:
		return nil, fmt.Errorf("CONNECT answered %s: %w", resp.Status, &ReplyError{Code: 0x01})
	}
	// Bytes that came with the response belong to the tunnel (a server
	// that speaks first). Only then is the conn wrapped, losing splice.
	if n := br.Buffered(); n > 0 {
		early, _ := br.Peek(n)
		return &prefixConn{Conn: c, prefix: append([]byte(nil), early...)}, nil
	}
	return c, nil
}

const maxResponseHead = 64 << 10

// prefixConn is a conn whose first reads return bytes already read.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// WriteTo sends the saved bytes, then leaves the rest to the conn
// underneath: between TCP conns io.Copy splices again.
func (p *prefixConn) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(p.prefix)
	p.prefix = nil
	if err != nil {
		return int64(n), err
	}
	m, err := io.Copy(w, p.Conn)
	return int64(n) + m, err
}

// ReadFrom writes straight to the conn underneath (its ReadFrom splices).
func (p *prefixConn) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(p.Conn, r)
}

// CloseWrite passes a half-close on when the conn underneath can.
func (p *prefixConn) CloseWrite() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return p.Conn.Close()
}
