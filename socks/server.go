// Package socks holds the SOCKS5 server used both as veilchain's local
// front end and as its hop/exit server (`veilchain serve`): the same
// protocol code, given a different Dialer.
package socks

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/internal/conns"
	"github.com/veilchain/veilchain/internal/stats"
	"github.com/veilchain/veilchain/policy"
)

// DefaultHandshakeTimeout bounds a client's handshake when Server.HandshakeTimeout is zero.
const DefaultHandshakeTimeout = 10 * time.Second

// DefaultRequestWait is how long a client past its auth may take to start
// its request: long enough for a chain's prebuilt circuits (which wait up
// to 25 s by default) to reach their request here.
const DefaultRequestWait = 60 * time.Second

// Server is a SOCKS5 server whose CONNECTs go through Dialer.
// Only Dialer is required; the zero value of every other field works.
type Server struct {
	Dialer chain.Dialer
	// Auth, if set, makes user/password auth (RFC 1929) mandatory;
	// otherwise only "no auth" is offered.
	Auth Authenticator
	// Listener names this front end to policy (policy.Client.Listener).
	Listener string
	// HandshakeTimeout bounds the client's greeting, auth and request.
	HandshakeTimeout time.Duration
	// RequestWait bounds the wait for the first byte of a request after
	// a user/password auth, when longer than HandshakeTimeout (default
	// DefaultRequestWait). Without auth, HandshakeTimeout bounds it.
	RequestWait time.Duration
	// IdleTimeout closes a relayed connection that carries nothing either
	// way for this long (0: never).
	IdleTimeout time.Duration
	// EarlyReply answers a CONNECT as soon as the chain's handshakes are
	// on their way (chain.Optimistic), so the client's first bytes follow
	// them without a round trip through the whole chain. It takes effect
	// when the chain's exit is pipelined (?pipeline=1). The trade-off: when
	// such a chain then fails, the client has had success and sees its
	// connection close, not the SOCKS error code; nothing goes direct.
	EarlyReply bool
	// Logger gets one line per failed connection; destinations only at debug.
	Logger *slog.Logger
	// LoopGuard, if set, is asked of every client once its request is
	// read: a conn of this process's own chain is refused, not relayed.
	LoopGuard *chain.LoopGuard
	// Stats, if set, is told of every connection (see internal/stats).
	Stats *stats.Registry

	group conns.Group
}

// Serve accepts SOCKS clients on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.group.SetLogger(s.logger())
	return s.group.Serve(ln, s.ServeConn)
}

// Shutdown stops accepting and waits for live connections until ctx ends,
// then closes them.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.group.Shutdown(ctx)
}

// ServeConn runs one client connection: the handshake and the dial here,
// then hands both conns to a relay (chain.StartRelay), which closes them
// when it ends.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) {
	handedOff := false
	var target net.Conn
	// The handshake's replies go through the cork (see cork): sent when
	// the server must wait for the client, or with the request's reply.
	corked := &cork{Conn: conn}
	defer func() {
		if !handedOff {
			corked.Flush() // an error reply, or a method refusal
			conn.Close()
			if target != nil {
				target.Close()
			}
		}
	}()
	// The client's logger is made when a line is written: With formats
	// its attribute at once, and a relay lives long (issue 20).
	log := func() *slog.Logger { return s.logger().With("client", conn.RemoteAddr().String()) }
	timeout := s.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	deadline := time.Now().Add(timeout)
	conn.SetDeadline(deadline)
	// Shutdown cuts a handshake short at once: it has nothing to finish.
	stop := context.AfterFunc(s.group.Draining(), func() { conn.SetDeadline(time.Unix(1, 0)) })
	br := bufio.NewReaderSize(corked, 512)
	authed := func() func() {
		// Past its auth, a client may hold its request back: a chain
		// that built this connection ahead of time sends it when its own
		// client comes (prebuild). The wait stays bounded.
		wait := cmp.Or(s.RequestWait, DefaultRequestWait)
		if wait <= timeout || s.group.Draining().Err() != nil {
			return func() {}
		}
		conn.SetDeadline(time.Now().Add(wait))
		if s.group.Draining().Err() != nil {
			conn.SetDeadline(time.Unix(1, 0)) // Shutdown came in between: it wins
		}
		return func() {
			if s.group.Draining().Err() == nil {
				conn.SetDeadline(time.Now().Add(timeout))
			}
		}
	}
	dest, version, user, err := s.handshakeAny(br, corked, conn.RemoteAddr().String(), authed)
	if !stop() {
		return
	}
	if err != nil {
		log().Debug("socks handshake failed", "err", err)
		if errors.Is(err, errHTTPOnSOCKS) {
			lingerClose(corked, conn)
		}
		return
	}
	dctx := policy.WithClient(ctx, policy.Client{Listener: s.Listener, User: user})
	if s.EarlyReply {
		dctx = chain.Optimistic(dctx)
	}
	dctx, dial := s.Stats.Dial(dctx, s.Listener, user, dest)
	if s.LoopGuard.Looped(conn) {
		err = chain.ErrLoop
	} else {
		target, err = s.Dialer.DialContext(dctx, "tcp", dest)
	}
	if time.Until(deadline) < timeout/2 {
		// The dial took most of the handshake's time: renew it for the
		// reply. Not otherwise: moving a deadline can wake a thread
		// (issue 20; see BENCHMARKS.md).
		conn.SetDeadline(time.Now().Add(timeout))
	}
	if err != nil {
		dial.Failed(err)
		code := replyCode(err)
		if version == 4 {
			writeReply4(corked, false)
		} else {
			writeReply(corked, code, nil)
		}
		logDialError(log(), err, code, dest)
		return
	}
	if version == 4 {
		writeReply4(corked, true)
	} else {
		writeReply(corked, 0x00, target.LocalAddr())
	}
	if err := corked.Flush(); err != nil {
		log().Debug("socks reply failed", "err", err)
		return
	}
	// Bytes the client sent right after its request belong to the stream.
	if n := br.Buffered(); n > 0 {
		early, _ := br.Peek(n)
		if _, err := target.Write(early); err != nil {
			log().Debug("forwarding early data failed", "err", err)
			return
		}
	}
	conn.SetDeadline(time.Time{})
	// The relay outlives this handler on goroutines of its own, which
	// start on small stacks; the group counts it until it ends.
	handedOff = true
	rctx, release := s.group.Hold()
	live := dial.Connected()
	chain.StartRelay(live.Relay(rctx), conn, target, s.IdleTimeout, func(up, down int64, err error) {
		defer release()
		live.Closed(up, down)
		conn.Close()
		target.Close()
		if _, ok := chain.LateHopError(err); ok {
			logDialError(log(), err, replyCode(err), dest) // an early reply's chain failed after all
		}
		if s.logger().Enabled(rctx, slog.LevelDebug) {
			log().Debug("socks connection closed", "dest", dest, "up", up, "down", down, "err", err)
		}
	})
}

// logDialError writes the one line per failed connection. Chain errors
// name the hop and never the destination, so they go out at warn level;
// the destination itself is logged only at debug.
func logDialError(log *slog.Logger, err error, code byte, dest string) {
	var hop *chain.HopError
	var refused *chain.ForbiddenError
	switch {
	case errors.As(err, &hop):
		log.Warn("chain failed", "hop", hop.Index+1, "hop_addr", hop.Addr, "reply", chain.ReplyText(code), "err", hop.Err)
	case errors.Is(err, chain.ErrBlocked):
		log.Info("refused by policy", "reason", err.Error()) // names the rule, not the destination
	case errors.Is(err, chain.ErrLoop):
		log.Warn("refused a loop", "err", err)
	case errors.As(err, &refused):
		log.Info("refused by the exit's range guard", refused.LogAttrs()...) // the range, not the destination
	default:
		log.Info("connect failed", "reply", chain.ReplyText(code))
	}
	log.Debug("connect failed", "dest", dest, "err", err)
}

// lingerClose sends what the cork holds, half-closes, and reads what the
// client still sends for a moment: closing with unread input would make
// the kernel send a reset, which can destroy the answer before the client
// reads it. The caller closes conn.
func lingerClose(corked *cork, conn net.Conn) {
	if corked.Flush() != nil {
		return
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.CopyN(io.Discard, conn, 64<<10)
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}
