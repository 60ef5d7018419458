package chain

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// SOCKS5 is a SOCKS5 hop (RFC 1928, with RFC 1929 user/password auth).
//
// We speak the client side ourselves instead of through
// golang.org/x/net/proxy: that client reports a hop's reply code only as
// text ("unknown error connection refused"), and a front end must hand the
// exact code to its own client without matching strings. It also wraps the
// conn, which hides (*net.TCPConn).ReadFrom and so defeats splice.
type SOCKS5 struct {
	Address  string // host:port of the proxy
	User     string // empty: no authentication
	Password string
	// Pipeline sends greeting, auth and request in one write and reads the
	// replies after (?pipeline=1): one round trip instead of two or three.
	// Off by default: a server must read exactly what each step needs.
	Pipeline bool
	// TLS, if set, makes this a layered hop (socks5s://): the handshake
	// and everything after it travel inside TLS to the proxy, always
	// pipelined, since our serve answers nothing until it has the greeting
	// and the auth together. Pin is the pin TLS checks, if any.
	TLS *tls.Config
	Pin string
	// Timeout bounds this hop's handshake (0: the chain's).
	Timeout time.Duration
	// Isolate, if not IsolateNone, replaces User and Password (which must
	// be empty) with credentials of their own per isolation key (see
	// isolationCredentials): Tor gives each its own circuit.
	Isolate Isolation
	salt    []byte // keys the isolation credentials; ParseHop makes one per hop
}

// Addr returns the proxy's host:port.
func (h *SOCKS5) Addr() string { return h.Address }

// HandshakeTimeout is this hop's own handshake timeout, if any.
func (h *SOCKS5) HandshakeTimeout() time.Duration { return h.Timeout }

// Connect runs the client handshake on conn and returns conn itself, so
// the relay keeps copying between raw TCP connections. Replies are read
// exactly, with no read-ahead, so no byte of the stream is buffered here.
// Deadlines are the caller's (Chain bridges its context to them).
func (h *SOCKS5) Connect(ctx context.Context, conn net.Conn, addr string) (net.Conn, error) {
	if h.TLS != nil {
		tc, err := startLayer(ctx, conn, h.TLS)
		if err != nil {
			return nil, err
		}
		conn = tc
	}
	if h.Pipeline || h.TLS != nil {
		// Offering one method, the server can only take it or refuse, so
		// everything can go at once; the replies are read in order.
		b, err := h.handshakeBytes(ctx, addr)
		if err != nil {
			return nil, err
		}
		if _, err := conn.Write(b); err != nil {
			return nil, err
		}
		if err := h.readReplies(conn); err != nil {
			return nil, err
		}
		return conn, nil
	}
	req, err := appendSOCKS5Addr([]byte{5, 1, 0}, addr)
	if err != nil {
		return nil, err
	}
	if err := h.greet(conn, h.greeting(ctx)); err != nil {
		return nil, err
	}
	if _, err := conn.Write(req); err != nil {
		return nil, err
	}
	if err := readConnectReply(conn); err != nil {
		return nil, err
	}
	return conn, nil
}

// prepare runs TLS to the hop, if layered, and the greeting and auth: all
// of the handshake but the request.
func (h *SOCKS5) prepare(ctx context.Context, conn net.Conn) (net.Conn, error) {
	if h.TLS != nil {
		tc, err := startLayer(ctx, conn, h.TLS)
		if err != nil {
			return nil, err
		}
		conn = tc
	}
	if !h.Pipeline && h.TLS == nil {
		return conn, h.greet(conn, h.greeting(ctx))
	}
	if _, err := conn.Write(h.greeting(ctx)); err != nil {
		return nil, err
	}
	return conn, h.readGreetReplies(conn)
}

func (h *SOCKS5) request(_ context.Context, conn net.Conn, addr string) (net.Conn, error) {
	b, _, err := h.requestBytes(addr)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(b); err != nil {
		return nil, err
	}
	return conn, readConnectReply(conn)
}

func (h *SOCKS5) requestBytes(addr string) ([]byte, bool, error) {
	b, err := appendSOCKS5Addr([]byte{5, 1, 0}, addr)
	return b, h.Pipeline || h.TLS != nil, err
}

func (h *SOCKS5) readRequestReply(conn net.Conn) error { return readConnectReply(conn) }

func (h *SOCKS5) pipelines() bool { return h.Pipeline && h.TLS == nil }

// layered is a hop in TLS to itself whose replies a Chain may read late,
// once the next hop's handshake is on its way behind its own.
type layered interface {
	layered() bool
	// connectDeferred runs the TLS handshake and writes the handshake to
	// reach addr, not waiting for the replies; it returns the TLS conn.
	connectDeferred(ctx context.Context, conn net.Conn, addr string) (net.Conn, error)
	// readReplies reads and checks those replies, exactly.
	readReplies(conn net.Conn) error
}

func (h *SOCKS5) layered() bool { return h.TLS != nil }

func (h *SOCKS5) connectDeferred(ctx context.Context, conn net.Conn, addr string) (net.Conn, error) {
	b, err := h.handshakeBytes(ctx, addr)
	if err != nil {
		return nil, err
	}
	tc, err := startLayer(ctx, conn, h.TLS)
	if err != nil {
		return nil, err
	}
	if _, err := tc.Write(b); err != nil {
		return nil, err
	}
	return tc, nil
}

func (h *SOCKS5) handshakeBytes(ctx context.Context, addr string) ([]byte, error) {
	return appendSOCKS5Addr(append(h.greeting(ctx), 5, 1, 0), addr)
}

func (h *SOCKS5) readReplies(conn net.Conn) error {
	if err := h.readGreetReplies(conn); err != nil {
		return err
	}
	return readConnectReply(conn)
}

// readConnectReply reads the reply to a CONNECT request, exactly.
func readConnectReply(conn net.Conn) error {
	var b [4]byte
	if _, err := io.ReadFull(conn, b[:4]); err != nil {
		return fmt.Errorf("reading connect reply: %w", err)
	}
	if b[0] != 5 {
		return fmt.Errorf("%w: version %d in connect reply", ErrProtocol, b[0])
	}
	if b[1] != 0 {
		return &ReplyError{Code: b[1]}
	}
	// Skip BND.ADDR and BND.PORT: nothing downstream needs them.
	var skip int
	switch b[3] {
	case 1:
		skip = 4 + 2
	case 4:
		skip = 16 + 2
	case 3:
		if _, err := io.ReadFull(conn, b[:1]); err != nil {
			return fmt.Errorf("reading connect reply: %w", err)
		}
		skip = int(b[0]) + 2
	default:
		return fmt.Errorf("%w: address type 0x%02x in connect reply", ErrProtocol, b[3])
	}
	var rest [257]byte
	if _, err := io.ReadFull(conn, rest[:skip]); err != nil {
		return fmt.Errorf("reading connect reply: %w", err)
	}
	return nil
}

// Probe runs the greeting and, if the hop wants it, the auth, without
// asking to connect anywhere: a health check that never reaches the
// destination side.
func (h *SOCKS5) Probe(ctx context.Context, conn net.Conn) error {
	if h.TLS == nil {
		return h.greet(conn, h.greeting(ctx))
	}
	tc, err := startLayer(ctx, conn, h.TLS)
	if err != nil {
		return err
	}
	if _, err := tc.Write(h.greeting(ctx)); err != nil {
		return err
	}
	return h.readGreetReplies(tc)
}

// greeting is the method offer, followed by the RFC 1929 auth request
// when the hop has a user or isolates (then with the credentials of ctx's
// isolation key).
func (h *SOCKS5) greeting(ctx context.Context) []byte {
	user, pass := h.User, h.Password
	if h.Isolate != IsolateNone {
		key, _ := isolationKey(ctx, h.Isolate)
		user, pass = isolationCredentials(h.salt, key)
	}
	if user == "" {
		return []byte{5, 1, 0}
	}
	b := make([]byte, 0, 6+len(user)+len(pass))
	b = append(b, 5, 1, 2, 1, byte(len(user)))
	b = append(b, user...)
	b = append(b, byte(len(pass)))
	return append(b, pass...)
}

// authenticates says whether the greeting carries user/password auth.
func (h *SOCKS5) authenticates() bool { return h.User != "" || h.Isolate != IsolateNone }

// greet runs the greeting g in lock step: offer, method reply, then auth.
func (h *SOCKS5) greet(conn net.Conn, g []byte) error {
	if _, err := conn.Write(g[:3]); err != nil {
		return err
	}
	if err := h.readMethodReply(conn); err != nil {
		return err
	}
	if !h.authenticates() {
		return nil
	}
	if _, err := conn.Write(g[3:]); err != nil {
		return err
	}
	return h.readAuthReply(conn)
}

// readGreetReplies reads the method reply and, with a user, the auth reply.
func (h *SOCKS5) readGreetReplies(conn net.Conn) error {
	if err := h.readMethodReply(conn); err != nil || !h.authenticates() {
		return err
	}
	return h.readAuthReply(conn)
}

func (h *SOCKS5) readMethodReply(conn net.Conn) error {
	method := byte(0x00)
	if h.authenticates() {
		method = 0x02
	}
	var b [2]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return fmt.Errorf("reading method reply: %w", err)
	}
	if b[0] == 'H' && b[1] == 'T' && h.TLS != nil {
		// "HTTP/1.1 400": a serve's gate handed us to its decoy web
		// server, as it does with anyone whose credentials it refuses.
		return fmt.Errorf("%w: the hop answered as a web server, as a veilchain serve does when it refuses the credentials", ErrHopAuth)
	}
	if b[0] != 5 {
		return fmt.Errorf("%w: version %d in method reply", ErrProtocol, b[0])
	}
	switch b[1] {
	case method:
		return nil
	case 0xFF:
		return fmt.Errorf("%w: no acceptable method", ErrHopAuth)
	}
	return fmt.Errorf("%w: hop chose method 0x%02x", ErrProtocol, b[1])
}

func (h *SOCKS5) readAuthReply(conn net.Conn) error {
	var b [2]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return fmt.Errorf("reading auth reply: %w", err)
	}
	if b[0] != 1 {
		return fmt.Errorf("%w: version %d in auth reply", ErrProtocol, b[0])
	}
	if b[1] != 0 && h.Isolate != IsolateNone {
		return fmt.Errorf("%w: isolation credentials refused (isolate= needs a hop that takes any user name, as Tor does)", ErrHopAuth)
	}
	if b[1] != 0 {
		return fmt.Errorf("%w: user %q refused", ErrHopAuth, h.User)
	}
	return nil
}

// appendSOCKS5Addr appends ATYP, DST.ADDR and DST.PORT for addr. A name is
// sent as a name (ATYP 0x03); it is never resolved here.
func appendSOCKS5Addr(b []byte, addr string) ([]byte, error) {
	host, port, err := splitAddr(addr)
	if err != nil {
		return nil, err
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return nil, fmt.Errorf("%w: IPv6 zone", ErrBadAddress)
		}
		if ip.Is4() || ip.Is4In6() {
			a := ip.Unmap().As4()
			b = append(append(b, 1), a[:]...)
		} else {
			a := ip.As16()
			b = append(append(b, 4), a[:]...)
		}
	} else {
		if len(host) == 0 || len(host) > 255 {
			return nil, fmt.Errorf("%w: host name must be 1-255 bytes", ErrBadAddress)
		}
		b = append(append(b, 3, byte(len(host))), host...)
	}
	return append(b, byte(port>>8), byte(port)), nil
}
