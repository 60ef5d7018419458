package conns

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"time"
)

// Sniff splits ln by the first byte each client sends: SOCKS (4 or 5) to
// the first listener returned, anything else (HTTP) to the second. Where
// the relay splices (Linux) the byte is peeked with MSG_PEEK, not read, so
// each server gets the raw, untouched *net.TCPConn; elsewhere it is read
// and handed back in front of the stream (a *PrefixConn). A client that
// sends nothing within timeout is closed. Closing both returned listeners
// closes ln. log, if not nil, hears of accept failures.
func Sniff(ln net.Listener, timeout time.Duration, log *slog.Logger) (socks, http net.Listener) {
	lns := Split(ln, 2, timeout, func(c net.Conn) (net.Conn, int) {
		switch b, c, err := FirstByte(c); {
		case err != nil:
			c.Close()
			return nil, -1
		case b == 4 || b == 5:
			return c, 0
		default:
			return c, 1
		}
	}, log)
	return lns[0], lns[1]
}

// FirstByte returns c's first byte, and the conn that still starts with
// it: c itself when the byte could be peeked at, else c behind the byte.
func FirstByte(c net.Conn) (byte, net.Conn, error) {
	var b [1]byte
	_, err := Peek(c, b[:])
	if errors.Is(err, ErrNoPeek) {
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return 0, c, err
		}
		return b[0], &PrefixConn{Conn: c, Prefix: b[:]}, nil
	}
	return b[0], c, err
}
