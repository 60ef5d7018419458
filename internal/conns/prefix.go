package conns

import (
	"io"
	"net"
)

// PrefixConn is a conn whose first reads return Prefix, bytes already
// read from Conn (a server that spoke before a handshake was over, a
// sniffed first byte), and then Conn's own.
type PrefixConn struct {
	net.Conn
	Prefix []byte
}

func (p *PrefixConn) Read(b []byte) (int, error) {
	if len(p.Prefix) > 0 {
		n := copy(b, p.Prefix)
		p.Prefix = p.Prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// WriteTo sends the saved bytes, then leaves the rest to the conn
// underneath: between TCP conns io.Copy splices again.
func (p *PrefixConn) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(p.Prefix)
	p.Prefix = nil
	if err != nil {
		return int64(n), err
	}
	m, err := io.Copy(w, p.Conn)
	return int64(n) + m, err
}

// ReadFrom writes straight to the conn underneath (its ReadFrom splices).
func (p *PrefixConn) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(p.Conn, r)
}

// NetConn is the conn underneath.
func (p *PrefixConn) NetConn() net.Conn { return p.Conn }

// CloseWrite passes a half-close on to the conn underneath.
func (p *PrefixConn) CloseWrite() error { return EndWrite(p.Conn) }
