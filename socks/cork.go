package socks

import "net"

// cork holds the server's handshake replies back until it must wait for
// the client, or the handshake is over, and then sends them in one write.
//
// A lock-step client loses nothing: it sends nothing until it has its
// reply, so the server reads the socket, and every read first sends what
// is held. A client that pipelines its greeting, auth and request gets
// the method choice, the auth result and the request's reply together:
// one wake-up for it instead of three. Behind a pipelined chain that is
// what each hop's replies cost the hops before it too, since every
// reply a hop sends separately is relayed on its own by each of them.
type cork struct {
	net.Conn
	held []byte
}

// Write holds b until the next read from the socket or Flush.
func (c *cork) Write(b []byte) (int, error) {
	c.held = append(c.held, b...)
	return len(b), nil
}

// Read sends what is held (the client may be waiting for it before it
// sends more), then reads.
func (c *cork) Read(b []byte) (int, error) {
	if err := c.Flush(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// Flush sends what is held.
func (c *cork) Flush() error {
	if len(c.held) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.held)
	c.held = nil
	return err
}
