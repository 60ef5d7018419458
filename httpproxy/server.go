// Package httpproxy is veilchain's HTTP proxy front end: CONNECT tunnels
// and absolute-form requests (GET http://host/...), sent through the same
// Dialer as every other front end, with identifying headers removed.
//
// It runs its own connection loop instead of net/http's Server: net/http
// quietly repairs request smuggling attempts (it drops Content-Length next
// to Transfer-Encoding and unfolds obs-fold) where we must refuse them,
// and a hijacked conn would give up the raw *net.TCPConn the shared relay
// splices with. Heads are still parsed by net/http (http.ReadRequest), and
// requests leave through an http.Transport whose DialContext is the chain.
package httpproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/internal/conns"
	"github.com/veilchain/veilchain/internal/stats"
	"github.com/veilchain/veilchain/policy"
)

// Defaults for the zero values of Server's limits.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultIdleTimeout      = 60 * time.Second
	DefaultMaxHeaderBytes   = 64 << 10
	DefaultMaxURIBytes      = 64 << 10
)

// Authenticator checks a user name and password given by the client at
// source (its host:port); policy.Users implements it.
type Authenticator interface {
	Authenticate(source, user, password string) bool
}

// Server is an HTTP/1.1 forward proxy whose connections go through Dialer.
// Only Dialer is required; the zero value of every other field works.
type Server struct {
	Dialer  chain.Dialer
	Headers HeaderPolicy
	// Auth, if set, makes Proxy-Authorization (Basic) mandatory.
	Auth Authenticator
	// Listener names this front end to policy (policy.Client.Listener).
	Listener string
	// HandshakeTimeout bounds reading a request head.
	HandshakeTimeout time.Duration
	// IdleTimeout bounds a keep-alive wait for the next request, a stalled
	// body read or write, and the wait for a response head.
	IdleTimeout time.Duration
	// TunnelIdleTimeout closes a CONNECT tunnel or upgraded connection that
	// carries nothing either way for this long (0: never).
	TunnelIdleTimeout time.Duration
	// MaxHeaderBytes bounds the request head (431 beyond it), MaxURIBytes
	// the request line (414).
	MaxHeaderBytes, MaxURIBytes int
	// EarlyReply answers a CONNECT with 200 as soon as the chain's
	// handshakes are on their way; see socks.Server.EarlyReply for the
	// trade-off. Plain requests always go out right behind the handshakes
	// (chain.Optimistic): their client still gets 502 or 504 if the chain
	// fails, because the answer it waits for is the response.
	EarlyReply bool
	Logger     *slog.Logger
	// LoopGuard, if set, is asked of every client once its first request
	// is read: a conn of this process's own chain is refused, not relayed.
	LoopGuard *chain.LoopGuard
	// PAC, if set, is served (application/x-ns-proxy-autoconfig) for a
	// GET of /proxy.pac in origin form, a request to the proxy itself;
	// every other such request still gets 400.
	PAC func() []byte
	// Stats, if set, is told of every CONNECT tunnel and every upstream
	// connection of forwarded requests (see internal/stats).
	Stats *stats.Registry

	group      conns.Group
	transports struct {
		sync.Mutex
		live map[*http.Transport]struct{} // one per client connection that forwarded
	}
}

// Serve accepts proxy clients on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.group.SetLogger(s.logger())
	return s.group.Serve(ln, s.ServeConn)
}

// Shutdown stops accepting and waits for live connections until ctx ends,
// then closes them.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.group.Shutdown(ctx)
	s.CloseIdle()
	return err
}

// CloseIdle closes the idle pooled upstream connections, so that new
// requests dial again (after a reload: through the new chains).
func (s *Server) CloseIdle() {
	s.transports.Lock()
	defer s.transports.Unlock()
	for t := range s.transports.live {
		t.CloseIdleConnections()
	}
}

// ServeConn serves the requests of one client connection and closes it,
// unless a CONNECT hands it to a relay (chain.StartRelay), which closes it
// when the tunnel ends.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) {
	c := &clientConn{
		srv:  s,
		conn: conn,
		br:   bufio.NewReaderSize(conn, 4096),
		log:  s.clientLog(conn),
	}
	c.bw = bufio.NewWriterSize(deadlineWriter{conn, s.idleTimeout()}, 4096)
	// Shutdown interrupts a wait for a request at once; a request in
	// flight finishes, or is cut by ctx when the grace period ends.
	stop := context.AfterFunc(s.group.Draining(), c.interrupt)
	defer stop()
	defer func() {
		if !c.handedOff {
			conn.Close()
		}
	}()
	defer c.dropTransport()
	for first := true; ; first = false {
		if !c.serveOne(ctx, first) {
			return
		}
	}
}

// socksRefusal is what a SOCKS client on the HTTP port gets, by version:
// SOCKS5 "no acceptable methods", SOCKS4 "request rejected".
var socksRefusal = map[byte][]byte{5: {5, 0xFF}, 4: {0, 0x5B}}

// clientConn is one client connection's state.
type clientConn struct {
	srv  *Server
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	log  *slog.Logger

	mu      sync.Mutex
	waiting bool // between requests, where Shutdown may cut in
	closing bool

	// wmu orders writes to bw between the request's goroutine and the
	// Transport's, which writes "100 Continue" when it first reads the body.
	wmu          sync.Mutex
	finalStarted bool // the final response head is being written: no more 100s

	handedOff bool // a tunnel owns conn now (see serveConnect)

	// The upstream pool of this client connection, for rtUser.
	rt     *http.Transport
	rtUser string
}

func (c *clientConn) interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	if c.waiting {
		c.conn.SetReadDeadline(time.Unix(1, 0))
	}
}

// setWaiting marks the wait for a request head, with its read deadline
// set under the same lock as interrupt, so neither can undo the other.
func (c *clientConn) setWaiting(w bool, deadline time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.waiting = w
	c.conn.SetReadDeadline(deadline)
	return true
}

// serveOne reads and serves one request; it reports whether the
// connection can carry another.
func (c *clientConn) serveOne(ctx context.Context, first bool) bool {
	s := c.srv
	wait := s.idleTimeout()
	if first {
		wait = s.handshakeTimeout()
	}
	if !c.setWaiting(true, time.Now().Add(wait)) {
		return false
	}
	b, err := c.br.Peek(1)
	if !c.setWaiting(false, time.Now().Add(s.handshakeTimeout())) || err != nil {
		return false
	}
	if first && (b[0] == 4 || b[0] == 5) {
		// A SOCKS client on the HTTP port: refuse it in its own protocol
		// at once, instead of leaving it to wait for an HTTP head.
		c.log.Debug("a SOCKS client on the HTTP proxy port", "version", b[0])
		c.bw.Write(socksRefusal[b[0]])
		if c.bw.Flush() == nil {
			c.lingerClose()
		}
		return false
	}
	req, err := readRequest(c.br, s.maxURI(), s.maxHeader())
	var netErr net.Error
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
	case errors.As(err, &netErr) && netErr.Timeout():
		c.writeError(&statusError{http.StatusRequestTimeout, "request head not received in time"}, true, nil)
		return false
	default:
		c.log.Debug("bad request", "err", err)
		c.writeError(err, true, nil)
		return false
	}
	if err != nil {
		return false
	}
	c.conn.SetReadDeadline(time.Time{})
	if first && s.LoopGuard.Looped(c.conn) {
		c.dialFailed(chain.ErrLoop, "")
		return false
	}

	user, ok := s.authorized(req, c.conn.RemoteAddr().String())
	if !ok {
		// A body the client still waits to be asked for (100-continue) is
		// not asked for: the connection closes instead.
		keep := !req.Close && req.Method != http.MethodConnect && !expectsContinue(req) && drain(c.conn, req.Body, s.idleTimeout())
		c.writeError(&statusError{http.StatusProxyAuthRequired, "proxy authentication required"}, !keep,
			http.Header{"Proxy-Authenticate": {`Basic realm="veilchain"`}})
		return keep
	}
	ctx = policy.WithClient(ctx, policy.Client{Listener: s.Listener, User: user})
	switch {
	case req.Method == http.MethodConnect:
		c.serveConnect(ctx, req)
		return false
	case req.URL.Host == "" && s.PAC != nil && req.Method == http.MethodGet && req.URL.Path == "/proxy.pac":
		c.servePAC(s.PAC())
		return false
	case req.URL.Host == "":
		c.writeError(&statusError{http.StatusBadRequest,
			"veilchain is a proxy: send absolute-form requests (GET http://host/path) or CONNECT host:port"}, true, nil)
		return false
	case !strings.EqualFold(req.URL.Scheme, "http"):
		c.writeError(&statusError{http.StatusBadRequest,
			"only http:// URLs are forwarded; use CONNECT for https and other protocols"}, true, nil)
		return false
	}
	return c.forward(ctx, req)
}

// checkTarget refuses bad addresses and requests for the proxy itself,
// which a direct chain would otherwise send round in a loop.
func (c *clientConn) checkTarget(addr string) error {
	if err := chain.CheckAddr(addr); err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(addr)
	local, ok := c.conn.LocalAddr().(*net.TCPAddr)
	if !ok || port != strconv.Itoa(local.Port) {
		return nil
	}
	if ip := net.ParseIP(host); strings.EqualFold(host, "localhost") || ip != nil && (ip.Equal(local.IP) || ip.IsLoopback() && local.IP.IsLoopback()) {
		return &statusError{http.StatusBadRequest, "request for the proxy itself"}
	}
	return nil
}

// serveConnect dials req's authority through the chain, says 200, then
// relays the raw connections.
func (c *clientConn) serveConnect(ctx context.Context, req *http.Request) {
	addr := req.URL.Host
	if err := c.checkTarget(addr); err != nil {
		c.writeError(err, true, nil)
		return
	}
	if c.srv.EarlyReply {
		ctx = chain.Optimistic(ctx)
	}
	ctx, dial := c.srv.Stats.Dial(ctx, c.srv.Listener, policy.ClientFrom(ctx).User, addr)
	target, err := c.srv.Dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		dial.Failed(err)
		c.dialFailed(err, addr)
		return
	}
	io.WriteString(c.bw, "HTTP/1.1 200 Connection established\r\n\r\n")
	if err := c.bw.Flush(); err != nil {
		target.Close()
		return
	}
	// Bytes the client sent after its CONNECT belong to the tunnel.
	if n := c.br.Buffered(); n > 0 {
		early, _ := c.br.Peek(n)
		if _, err := target.Write(early); err != nil {
			target.Close()
			return
		}
	}
	c.conn.SetDeadline(time.Time{})
	// The tunnel outlives this handler on goroutines of its own, which
	// keep neither the handshake's stack nor the 8 KiB of bufio buffers.
	// The tunnel's lines get a logger of their own when they are written:
	// one made now (With formats its attribute at once) would be kept by
	// every tunnel for its whole life (issue 20).
	conn, srv := c.conn, c.srv
	c.handedOff = true
	rctx, release := c.srv.group.Hold()
	live := dial.Connected()
	chain.StartRelay(live.Relay(rctx), conn, target, c.srv.TunnelIdleTimeout, func(up, down int64, err error) {
		defer release()
		live.Closed(up, down)
		conn.Close()
		target.Close()
		if hop, ok := chain.LateHopError(err); ok {
			warnChainFailed(srv.clientLog(conn), hop, err) // an early reply's chain failed after all
		}
		if srv.logger().Enabled(rctx, slog.LevelDebug) {
			srv.clientLog(conn).Debug("tunnel closed", "dest", addr, "up", up, "down", down, "err", err)
		}
	})
}

// forward sends an absolute-form request through the chain and writes the
// response back; it reports whether the connection can carry another.
func (c *clientConn) forward(ctx context.Context, req *http.Request) bool {
	dest := req.URL.Host
	if req.URL.Port() == "" {
		dest = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	if err := c.checkTarget(dest); err != nil {
		c.writeError(err, true, nil)
		return false
	}
	keepAlive := !req.Close && req.ProtoAtLeast(1, 1)
	// What the client has sent of its body is read and checked before the
	// chain is dialled: a body that is malformed or cut short there gets
	// 400 here, and the destination never sees its head. (A client that
	// waits for "100 Continue" sends nothing before the destination asks:
	// its body streams, and is checked on the way.)
	var start []byte
	complete := req.ContentLength == 0
	if !complete && !expectsContinue(req) {
		var err error
		if start, complete, err = c.prefetchBody(req.Body, req.ContentLength); err != nil {
			c.log.Debug("client request body failed", "err", err)
			c.writeError(bodyError(err), true, nil)
			return false
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Nothing may stall for longer than the idle timeout: not the client's
	// body, not the destination's answer or its body.
	idle := newWatchdog(c.srv.idleTimeout(), cancel)
	defer idle.stop()
	out := &http.Request{
		Method:     req.Method,
		URL:        req.URL,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     req.Header,
		Host:       req.URL.Host,
	}
	var body *clientBody
	switch {
	case complete && req.ContentLength != 0: // read already; framed as the client framed it
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(start)), req.ContentLength
	case !complete:
		r := req.Body
		if len(start) > 0 {
			r = io.NopCloser(io.MultiReader(bytes.NewReader(start), req.Body))
		}
		body = &clientBody{c: c, r: r, idle: idle, expect: expectsContinue(req)}
		out.Body, out.ContentLength = body, req.ContentLength
	}
	websocket := c.srv.Headers.Clean(out.Header, req.URL)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{""} // or Go adds its own
	}
	var upstream net.Conn // the chain's conn, for an upgrade's half-close
	if websocket {
		rctx = httptrace.WithClientTrace(rctx, &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { upstream = info.Conn },
		})
	}
	resp, err := c.roundTripper(policy.ClientFrom(ctx).User).RoundTrip(out.WithContext(rctx))
	c.wmu.Lock()
	c.finalStarted = true // from here on, only this goroutine writes to the client
	c.wmu.Unlock()
	if err != nil {
		switch {
		case body != nil && body.clientErr() != nil:
			// The client's fault, not the chain's: 408 or 400, not 502.
			c.log.Debug("client request body failed", "err", body.clientErr())
			c.writeError(bodyError(body.clientErr()), true, nil)
		case idle.fired():
			c.writeError(&statusError{http.StatusGatewayTimeout, "the destination stalled"}, true, nil)
		default:
			c.dialFailed(err, dest)
		}
		return false
	}
	defer resp.Body.Close()

	if resp.StatusCode == http.StatusSwitchingProtocols {
		idle.stop()
		if !websocket {
			c.writeError(&statusError{http.StatusBadGateway, "unexpected protocol switch"}, true, nil)
			return false
		}
		c.relayUpgrade(ctx, resp, upstream, dest)
		return false
	}
	removeHopByHop(resp.Header)
	w := &http.Response{
		Status:        resp.Status,
		StatusCode:    resp.StatusCode,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        resp.Header,
		Body:          &flushBeforeRead{r: resp.Body, w: c.bw, idle: idle},
		ContentLength: resp.ContentLength,
		Trailer:       resp.Trailer,
		Close:         !keepAlive,
		Request:       req,
	}
	if resp.ContentLength < 0 && keepAlive {
		w.TransferEncoding = []string{"chunked"}
	}
	if !req.ProtoAtLeast(1, 1) {
		w.Proto, w.ProtoMinor = "HTTP/1.0", 0
	}
	// Write through a plain io.Writer: bufio.Writer.ReadFrom would read
	// the body into the very buffer flushBeforeRead flushes.
	if err := w.Write(struct{ io.Writer }{c.bw}); err != nil {
		c.log.Debug("writing response failed", "err", err)
		return false
	}
	if err := c.bw.Flush(); err != nil {
		return false
	}
	c.log.Debug("forwarded", "dest", dest, "status", resp.StatusCode)
	// The next request starts where this one's body ends. Only when the
	// Transport has read the body to its end is that point known, and
	// nothing else reading c.br: otherwise the connection closes.
	return keepAlive && (body == nil || body.finished())
}

// relayUpgrade passes a 101 response on and relays the upgraded streams.
// It reads and writes through the Transport's upgraded body, which holds
// any bytes already buffered, and half-closes through the chain's conn.
func (c *clientConn) relayUpgrade(ctx context.Context, resp *http.Response, conn net.Conn, dest string) {
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		c.writeError(&statusError{http.StatusBadGateway, "upgrade failed"}, true, nil)
		return
	}
	upstream := &upgraded{ReadWriteCloser: rwc, conn: conn}
	fmt.Fprintf(c.bw, "HTTP/1.1 %s\r\n", resp.Status)
	resp.Header.Write(c.bw)
	io.WriteString(c.bw, "\r\n")
	if err := c.bw.Flush(); err != nil {
		return
	}
	if n := c.br.Buffered(); n > 0 {
		early, _ := c.br.Peek(n)
		if _, err := upstream.Write(early); err != nil {
			return
		}
	}
	c.conn.SetDeadline(time.Time{})
	up, down, err := chain.RelayIdle(ctx, c.conn, upstream, c.srv.TunnelIdleTimeout)
	c.log.Debug("upgraded connection closed", "dest", dest, "up", up, "down", down, "err", err)
}

// clientLog is the logger for conn's client's lines.
func (s *Server) clientLog(conn net.Conn) *slog.Logger {
	return s.logger().With("client", conn.RemoteAddr().String())
}

// warnChainFailed is the line a failed chain gets: it names the hop, and
// never the destination.
func warnChainFailed(log *slog.Logger, hop *chain.HopError, err error) {
	log.Warn("chain failed", "hop", hop.Index+1, "hop_addr", hop.Addr, "status", statusOf(err), "err", hop.Err)
}

// dialFailed logs a chain failure and answers it: the hop at warn level,
// the destination only at debug. The log comes first: the answer may
// linger (see lingerClose).
func (c *clientConn) dialFailed(err error, dest string) {
	var hop *chain.HopError
	var refused *chain.ForbiddenError
	switch {
	case errors.As(err, &hop):
		warnChainFailed(c.log, hop, err)
	case errors.Is(err, chain.ErrBlocked):
		c.log.Info("refused by policy", "reason", err.Error()) // names the rule, not the destination
	case errors.Is(err, chain.ErrLoop):
		c.log.Warn("refused a loop", "err", err)
	case errors.As(err, &refused):
		c.log.Info("refused by the exit's range guard", refused.LogAttrs()...) // the range, not the destination
	default:
		c.log.Info("request failed", "status", statusOf(err))
	}
	c.log.Debug("request failed", "dest", dest, "err", err)
	c.writeError(err, true, nil)
}

// writeError sends the status err maps to, with a short text body.
func (c *clientConn) writeError(err error, closeConn bool, extra http.Header) {
	code := statusOf(err)
	body := "veilchain: " + errorText(err, isLoopback(c.conn.LocalAddr())) + "\n"
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n", code, http.StatusText(code), len(body))
	extra.Write(c.bw)
	if closeConn {
		io.WriteString(c.bw, "Connection: close\r\n")
	}
	io.WriteString(c.bw, "\r\n")
	io.WriteString(c.bw, body)
	if c.bw.Flush() == nil && closeConn {
		c.lingerClose()
	}
}

// servePAC answers a GET /proxy.pac with pac, and closes.
func (c *clientConn) servePAC(pac []byte) {
	fmt.Fprintf(c.bw, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ns-proxy-autoconfig\r\nContent-Length: %d\r\n"+
		"Cache-Control: no-store\r\nConnection: close\r\n\r\n", len(pac))
	c.bw.Write(pac)
	if c.bw.Flush() == nil {
		c.lingerClose()
	}
}

// lingerClose half-closes and reads what the client is still sending for
// a moment: closing with unread input makes the kernel send a reset,
// which can destroy the error response before the client reads it.
func (c *clientConn) lingerClose() {
	if conns.CloseWrite(c.conn) == nil {
		c.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.CopyN(io.Discard, c.conn, 256<<10)
	}
}

// authorized checks Proxy-Authorization when auth is on, and returns the user.
func (s *Server) authorized(req *http.Request, source string) (string, bool) {
	if s.Auth == nil {
		return "", true
	}
	scheme, payload, _ := strings.Cut(req.Header.Get("Proxy-Authorization"), " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(payload))
	if err != nil {
		return "", false
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	return user, ok && s.Auth.Authenticate(source, user, pass)
}

// roundTripper is the Transport that carries this client connection's
// forwarded requests: its connections come from the chain, it keeps them
// alive per host, and it changes nothing the client sent (no
// Accept-Encoding, no proxy of its own). Pools are never shared between
// client connections (Privoxy's default too): a destination must not be
// able to tell that two programs, or two users, are one by the upstream
// connection they arrive on, and policy may route two users to one host
// through different chains. A user change on one client connection
// starts a new pool.
func (c *clientConn) roundTripper(user string) *http.Transport {
	if c.rt != nil && c.rtUser == user {
		return c.rt
	}
	c.dropTransport()
	s := c.srv
	c.rt, c.rtUser = &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			// The request follows the handshakes at once; a refusal still
			// comes back as the Transport's error, and so as a 502 or 504.
			ctx, dial := s.Stats.Dial(ctx, s.Listener, policy.ClientFrom(ctx).User, addr)
			conn, err := s.Dialer.DialContext(chain.Optimistic(ctx), network, addr)
			if err != nil {
				dial.Failed(err)
				return nil, err
			}
			if live := dial.Connected(); live != nil {
				return &countedConn{Conn: conn, live: live}, nil
			}
			return conn, nil
		},
		DisableCompression:     true,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
		ResponseHeaderTimeout:  s.idleTimeout(),
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 256 << 10,
		TLSNextProto:           map[string]func(string, *tls.Conn) http.RoundTripper{},
	}, user
	s.transports.Lock()
	if s.transports.live == nil {
		s.transports.live = map[*http.Transport]struct{}{}
	}
	s.transports.live[c.rt] = struct{}{}
	s.transports.Unlock()
	return c.rt
}

// dropTransport closes the idle upstream connections of this client
// connection's pool: nobody else may use them.
func (c *clientConn) dropTransport() {
	if c.rt == nil {
		return
	}
	c.rt.CloseIdleConnections()
	c.srv.transports.Lock()
	delete(c.srv.transports.live, c.rt)
	c.srv.transports.Unlock()
	c.rt = nil
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Server) handshakeTimeout() time.Duration {
	return orDefault(s.HandshakeTimeout, DefaultHandshakeTimeout)
}

func (s *Server) idleTimeout() time.Duration { return orDefault(s.IdleTimeout, DefaultIdleTimeout) }

func (s *Server) maxHeader() int { return orDefault(s.MaxHeaderBytes, DefaultMaxHeaderBytes) }

func (s *Server) maxURI() int { return orDefault(s.MaxURIBytes, DefaultMaxURIBytes) }

func orDefault[T time.Duration | int](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// countedConn is an upstream connection of forwarded requests, counted
// in Stats per Read and Write call (the Transport's own buffered I/O:
// nothing here could splice anyway).
type countedConn struct {
	net.Conn
	live *stats.Conn
	once sync.Once
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.live.Add(1, int64(n))
	return n, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.live.Add(0, int64(n))
	return n, err
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.live.Closed(c.live.Bytes()) })
	return c.Conn.Close()
}
