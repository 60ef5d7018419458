package socks

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"

	socks5 "github.com/armon/go-socks5"

	"github.com/veilchain/veilchain/chain"
)

// The server side of the SOCKS5 handshake. github.com/armon/go-socks5
// parses the auth sub-negotiation and the request; its Server is not used:
// it resolves names locally by default, runs requests without a deadline,
// picks reply codes by matching error text and owns a relay of its own,
// while every veilchain front end must share one relay (chain.Relay).

var (
	errVersion     = errors.New("not SOCKS version 5")
	errNoMethod    = errors.New("no acceptable auth method")
	errCommand     = errors.New("command not supported")
	errAddressType = errors.New("address type not supported")
)

// handshake reads the greeting, authenticates, reads the request and
// returns its destination as host:port, with a name kept as a name, and
// the user the client authenticated as. On a request it cannot serve it
// has already sent the error reply. authed, if set, is called once a
// client is through a user/password auth, to lengthen the wait for its
// request; what it returns puts the handshake's deadline back.
func (s *Server) handshake(r *bufio.Reader, w io.Writer, source string, authed func() (restore func())) (dest, user string, err error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", "", fmt.Errorf("reading greeting: %w", err)
	}
	if hdr[0] != 5 {
		return "", "", fmt.Errorf("%w: first byte 0x%02x", errVersion, hdr[0])
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(r, methods); err != nil {
		return "", "", fmt.Errorf("reading methods: %w", err)
	}
	// Offer exactly one method: with credentials configured, "no auth"
	// must not be an option the client can pick.
	var auth socks5.Authenticator = socks5.NoAuthAuthenticator{}
	if s.Auth != nil {
		auth = socks5.UserPassAuthenticator{Credentials: credentialStore{s.Auth, source}}
	}
	if !contains(methods, auth.GetCode()) {
		w.Write([]byte{5, 0xFF})
		return "", "", errNoMethod
	}
	actx, err := auth.Authenticate(r, w)
	if err != nil {
		return "", "", fmt.Errorf("auth: %w", err)
	}
	if actx != nil {
		user = actx.Payload["Username"]
	}
	if authed != nil && user != "" {
		// An authenticated client may hold its request back: see
		// Server.RequestWait. Once it starts, the handshake's bound is back.
		// Most send it at once: the longer wait starts only when the
		// handshake's own deadline has passed, since moving a deadline can
		// wake a thread (issue 20).
		_, err := r.Peek(1)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			restore := authed()
			_, err = r.Peek(1)
			restore()
		}
		if err != nil {
			return "", "", fmt.Errorf("reading request: %w", err)
		}
	}
	dest, err = s.request(r, w)
	return dest, user, err
}

// request reads the CONNECT request after the auth sub-negotiation.
func (s *Server) request(r *bufio.Reader, w io.Writer) (string, error) {

	// go-socks5 rejects unknown address types with an unexported error;
	// look first so the client gets reply 0x08.
	head, err := r.Peek(4)
	if err != nil {
		return "", fmt.Errorf("reading request: %w", err)
	}
	if head[0] != 5 {
		return "", fmt.Errorf("%w: request version 0x%02x", errVersion, head[0])
	}
	if t := head[3]; t != 1 && t != 3 && t != 4 {
		writeReply(w, 0x08, nil)
		return "", fmt.Errorf("%w: 0x%02x", errAddressType, t)
	}
	req, err := socks5.NewRequest(r)
	if err != nil {
		return "", fmt.Errorf("reading request: %w", err)
	}
	if req.Command != socks5.ConnectCommand {
		writeReply(w, 0x07, nil)
		return "", fmt.Errorf("%w: 0x%02x", errCommand, req.Command)
	}
	dest, err := destination(req.DestAddr)
	if err != nil {
		writeReply(w, replyCode(err), nil)
		return "", err
	}
	return dest, nil
}

// destination formats a requested address as host:port and checks it.
func destination(a *socks5.AddrSpec) (string, error) {
	host := a.FQDN
	if host == "" && a.IP != nil {
		host = a.IP.String()
	}
	addr := net.JoinHostPort(host, strconv.Itoa(a.Port))
	return addr, chain.CheckAddr(addr)
}

// writeReply sends a SOCKS5 reply with bound address addr (zero if nil).
func writeReply(w io.Writer, code byte, addr net.Addr) error {
	b := []byte{5, code, 0, 1, 0, 0, 0, 0, 0, 0}
	if ta, ok := addr.(*net.TCPAddr); ok && ta != nil {
		if ip4 := ta.IP.To4(); ip4 != nil {
			copy(b[4:8], ip4)
		} else if ip16 := ta.IP.To16(); ip16 != nil {
			b = append(append([]byte{5, code, 0, 4}, ip16...), 0, 0)
		}
		b[len(b)-2], b[len(b)-1] = byte(ta.Port>>8), byte(ta.Port)
	}
	_, err := w.Write(b)
	return err
}

func contains(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}
