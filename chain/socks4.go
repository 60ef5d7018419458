package chain

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// SOCKS4 is a SOCKS4 or SOCKS4a hop. With A set (socks4a://), a name is
// sent as a name for the hop to resolve; plain SOCKS4 carries IPv4
// addresses only, and a name is refused here rather than resolved locally.
type SOCKS4 struct {
	Address string
	UserID  string
	A       bool
	// Timeout bounds this hop's handshake (0: the chain's).
	Timeout time.Duration
}

// Addr returns the proxy's host:port.
func (h *SOCKS4) Addr() string { return h.Address }

// HandshakeTimeout is this hop's own handshake timeout, if any.
func (h *SOCKS4) HandshakeTimeout() time.Duration { return h.Timeout }

// Connect sends one CONNECT request and reads the 8-byte reply; the conn
// is returned as it is.
func (h *SOCKS4) Connect(_ context.Context, conn net.Conn, addr string) (net.Conn, error) {
	host, port, err := splitAddr(addr)
	if err != nil {
		return nil, err
	}
	req := binary.BigEndian.AppendUint16([]byte{4, 1}, port)
	var name string
	switch ip, err := netip.ParseAddr(host); {
	case err == nil && ip.Unmap().Is4():
		a := ip.Unmap().As4()
		if a[0] == 0 && a[1] == 0 && a[2] == 0 {
			// 0.0.0.x means "a name follows" to a SOCKS4a server.
			return nil, fmt.Errorf("%w: 0.0.0.x cannot be sent over SOCKS4", ErrBadAddress)
		}
		req = append(req, a[:]...)
	case err == nil:
		return nil, fmt.Errorf("%w: SOCKS4 cannot carry IPv6 addresses", ErrBadAddress) // no address: this text is logged
	case !h.A:
		return nil, fmt.Errorf("%w: socks4:// carries IPv4 addresses only; use socks4a:// to send names", ErrBadAddress)
	case len(host) == 0 || len(host) > 255:
		return nil, fmt.Errorf("%w: host name must be 1-255 bytes", ErrBadAddress)
	default:
		req = append(req, 0, 0, 0, 1) // 0.0.0.x: "the name follows" (SOCKS4a)
		name = host
	}
	req = append(append(req, h.UserID...), 0)
	if name != "" {
		req = append(append(req, name...), 0)
	}
	if _, err := conn.Write(req); err != nil {
		return nil, err
	}
	var reply [8]byte
	if _, err := io.ReadFull(conn, reply[:]); err != nil {
		return nil, fmt.Errorf("reading SOCKS4 reply: %w", err)
	}
	if reply[0] != 0 {
		return nil, fmt.Errorf("%w: version %d in SOCKS4 reply", ErrProtocol, reply[0])
	}
	switch reply[1] {
	case 0x5A:
		return conn, nil
	case 0x5C, 0x5D: // identd unreachable / user mismatch
		return nil, fmt.Errorf("%w: SOCKS4 reply 0x%02x", ErrHopAuth, reply[1])
	case 0x5B:
		// "Rejected or failed": SOCKS4 does not say which. Reported as a
		// general failure, the client learns no more than the hop said.
		return nil, &ReplyError{Code: 0x01}
	}
	return nil, fmt.Errorf("%w: SOCKS4 reply 0x%02x", ErrProtocol, reply[1])
}
