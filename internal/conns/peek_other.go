//go:build !linux || portable

package conns

import "net"

// canPeek: no Peek here. It would only save a read: without splice a
// relay gains nothing from the raw *net.TCPConn, so callers read what
// they need to see and hand it back in front of the stream (PrefixConn).
// (Windows has MSG_PEEK, but Go drives its sockets with overlapped I/O,
// not non-blocking calls: a peek there would need a readiness wait of its
// own, for no gain.)
const canPeek = false

// Peek returns ErrNoPeek: see canPeek.
func Peek(c net.Conn, buf []byte) (int, error) { return 0, ErrNoPeek }
