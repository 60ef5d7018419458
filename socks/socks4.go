package socks

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"

	"github.com/veilchain/veilchain/chain"
)

// SOCKS4 and SOCKS4a, served on the same port as SOCKS5: the first byte
// of the greeting is the version. SOCKS4 has no password, so a server
// with Credentials refuses it.

var errSOCKS4Auth = errors.New("SOCKS4 carries no password and this server requires one")

// errHTTPOnSOCKS is an HTTP request on the SOCKS port, answered with
// wrongPortReply.
var errHTTPOnSOCKS = errors.New("an HTTP request on the SOCKS port")

const wrongPortBody = "this is veilchain's SOCKS port; use the HTTP proxy port\n"

var wrongPortReply = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Content-Length: " + strconv.Itoa(len(wrongPortBody)) + "\r\nConnection: close\r\n\r\n" + wrongPortBody

// handshakeAny runs the SOCKS4 or the SOCKS5 handshake, by the first
// byte, for a client at source; user is who it authenticated as.
func (s *Server) handshakeAny(r *bufio.Reader, w io.Writer, source string, authed func() (restore func())) (dest string, version byte, user string, err error) {
	first, err := r.Peek(1)
	if err != nil {
		return "", 0, "", fmt.Errorf("reading greeting: %w", err)
	}
	switch b := first[0]; {
	case b == 4:
		dest, err = s.handshake4(r, w)
		return dest, 4, "", err
	case 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z':
		// An HTTP client on the SOCKS port: tell it so at once, instead
		// of leaving it to wait for a SOCKS answer it cannot read.
		io.WriteString(w, wrongPortReply)
		return "", 0, "", errHTTPOnSOCKS
	}
	dest, user, err = s.handshake(r, w, source, authed)
	return dest, 5, user, err
}

// handshake4 reads a SOCKS4 or SOCKS4a request:
//
//	VN=4 CD DSTPORT(2) DSTIP(4) USERID NUL [HOST NUL, when DSTIP is 0.0.0.x]
//
// A request for an address is passed on as that address (the client has
// already resolved it); a SOCKS4a name is passed on as a name. Anything
// malformed is answered 0x5B and closed.
func (s *Server) handshake4(r *bufio.Reader, w io.Writer) (string, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", fmt.Errorf("reading SOCKS4 request: %w", err)
	}
	fail := func(err error) (string, error) {
		writeReply4(w, false)
		return "", err
	}
	if _, err := readCString(r, 255); err != nil {
		return fail(fmt.Errorf("SOCKS4 user ID: %w", err))
	}
	if hdr[1] != 1 {
		return fail(fmt.Errorf("%w: SOCKS4 command 0x%02x", errCommand, hdr[1]))
	}
	if s.Auth != nil {
		return fail(errSOCKS4Auth)
	}
	port := strconv.Itoa(int(binary.BigEndian.Uint16(hdr[2:4])))
	ip := netip.AddrFrom4([4]byte(hdr[4:8]))
	host := ip.String()
	if hdr[4] == 0 && hdr[5] == 0 && hdr[6] == 0 && hdr[7] != 0 { // SOCKS4a
		name, err := readCString(r, 255)
		if err != nil {
			return fail(fmt.Errorf("SOCKS4a host name: %w", err))
		}
		host = name
	}
	dest := net.JoinHostPort(host, port)
	if err := chain.CheckAddr(dest); err != nil {
		return fail(err)
	}
	return dest, nil
}

// readCString reads a NUL-terminated string of at most max bytes.
func readCString(r *bufio.Reader, max int) (string, error) {
	var b []byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		if c == 0 {
			return string(b), nil
		}
		if len(b) == max {
			return "", fmt.Errorf("longer than %d bytes", max)
		}
		b = append(b, c)
	}
}

// writeReply4 sends a SOCKS4 reply: 0x5A granted or 0x5B rejected/failed,
// the only two answers SOCKS4 has for us.
func writeReply4(w io.Writer, ok bool) error {
	code := byte(0x5B)
	if ok {
		code = 0x5A
	}
	_, err := w.Write([]byte{0, code, 0, 0, 0, 0, 0, 0})
	return err
}
