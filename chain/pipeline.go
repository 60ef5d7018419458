package chain

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/veilchain/veilchain/internal/conns"
)

// pipelined is a hop that takes its whole handshake in one write, with
// whatever comes after it (the next hop's handshake, or the client's
// first bytes) right behind, before any reply is read: its server reads
// exactly what each step needs and relays the rest once it is connected.
// Only a hop configured so (?pipeline=1) says yes; a server that reads
// ahead and drops the rest would stall, so it is the user's call per hop.
type pipelined interface {
	pipelines() bool
	// handshakeBytes is everything the client sends to reach addr.
	handshakeBytes(ctx context.Context, addr string) ([]byte, error)
	// readReplies reads and checks the replies to handshakeBytes, exactly.
	readReplies(conn net.Conn) error
}

// pipelinedOf returns h's pipelined side, if it pipelines.
func pipelinedOf(h Hop) pipelined {
	if p, ok := h.(pipelined); ok && p.pipelines() {
		return p
	}
	return nil
}

// pipelinedRun counts the pipelined hops at the start of hops.
func pipelinedRun(hops []Hop) int {
	n := 0
	for n < len(hops) && pipelinedOf(hops[n]) != nil {
		n++
	}
	return n
}

type optimisticKey struct{}

// Optimistic marks ctx so that a Chain whose last hops are pipelined
// returns as soon as their handshakes are written, without waiting for
// the replies: the caller's first bytes follow the handshakes at once,
// saving a round trip through the whole chain. The replies are read and
// checked on the conn's first Read (or by Relay); a refusal surfaces
// there, as the same *HopError a plain dial would have returned, and the
// conn is closed. Nothing goes anywhere but down the chain either way: a
// hop that fails drops what was queued behind its handshake (an HTTP hop
// is asked to close after a refusal, not to read it as a new request).
//
// The cost: such a dial cannot fail over to other hops, and an error
// arrives only when the caller reads. The HTTP front end uses it for plain
// requests (its client still gets 502/504); SOCKS and CONNECT only when
// told to answer early.
func Optimistic(ctx context.Context) context.Context {
	return context.WithValue(ctx, optimisticKey{}, true)
}

func isOptimistic(ctx context.Context) bool {
	v, _ := ctx.Value(optimisticKey{}).(bool)
	return v
}

// pendingConn is a chain conn whose last replies are still on their way.
// Writes go straight out, behind the handshakes; the first Read reads and
// checks the replies first.
type pendingConn struct {
	net.Conn
	finish func() error
	cancel context.CancelFunc // ends a wait for replies as ours, not the hop's fault
	once   sync.Once
	err    error

	// The caller's deadlines, kept apart from the ones the hops' replies
	// are read under, and put back once the replies are in.
	mu        sync.Mutex
	confirmed bool
	readDL    time.Time
	writeDL   time.Time
}

func (p *pendingConn) SetDeadline(t time.Time) error {
	return p.setDeadlines(&t, &t)
}

func (p *pendingConn) SetReadDeadline(t time.Time) error { return p.setDeadlines(&t, nil) }

func (p *pendingConn) SetWriteDeadline(t time.Time) error { return p.setDeadlines(nil, &t) }

// setDeadlines records the caller's deadlines. Writes go straight out,
// so a write deadline applies at once, except while the replies are read
// under the hops' own timeouts (which bound writes too); a read deadline
// waits for the replies. Both are put back once the replies are in.
func (p *pendingConn) setDeadlines(read, write *time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if read != nil {
		p.readDL = *read
	}
	if write != nil {
		p.writeDL = *write
		if err := p.Conn.SetWriteDeadline(*write); err != nil {
			return err
		}
	}
	if p.confirmed && read != nil {
		return p.Conn.SetReadDeadline(*read)
	}
	return nil
}

// latePending is conn with replies still to come, read by read on its
// first Read. The dial is over by then: only the hops' own timeouts bound
// the replies, under a context of the conn's own, which closing the conn
// cancels (a cancellation that blames no hop); done runs once either way.
func latePending(conn net.Conn, done func(), read func(rctx context.Context) error) *pendingConn {
	rctx, cancel := context.WithCancel(context.Background())
	return &pendingConn{Conn: conn, cancel: func() { cancel(); done() }, finish: func() error {
		defer cancel()
		defer done()
		return read(rctx)
	}}
}

// Close closes the conn, first ending any wait for the replies so that
// it does not count against a hop.
func (p *pendingConn) Close() error {
	p.cancel()
	return p.Conn.Close()
}

// confirm reads the pending replies once; on failure the conn is closed.
// Then the caller's deadlines apply again.
func (p *pendingConn) confirm() error {
	p.once.Do(func() {
		if p.err = p.finish(); p.err != nil {
			p.Conn.Close()
		}
		p.mu.Lock()
		p.confirmed = true
		p.Conn.SetReadDeadline(p.readDL)
		p.Conn.SetWriteDeadline(p.writeDL)
		p.mu.Unlock()
	})
	return p.err
}

// Write sends b behind the handshakes. When that fails, the chain has
// most likely refused and closed, and its reply is the error to give:
// a caller that writes a request before it reads (an HTTP transport)
// would otherwise see only "connection reset", and its client a 502
// where the chain said 403.
func (p *pendingConn) Write(b []byte) (int, error) {
	n, err := p.Conn.Write(b)
	if err != nil {
		if cerr := p.confirm(); cerr != nil {
			return n, cerr
		}
	}
	return n, err
}

func (p *pendingConn) Read(b []byte) (int, error) {
	if err := p.confirm(); err != nil {
		return 0, err
	}
	return p.Conn.Read(b)
}

// CloseWrite half-closes the conn underneath, when it can.
func (p *pendingConn) CloseWrite() error { return conns.EndWrite(p.Conn) }

// NetConn is the conn underneath.
func (p *pendingConn) NetConn() net.Conn { return p.Conn }

// Confirm waits for a conn from an Optimistic dial to be complete, and
// returns the error the dial would have returned. Any other conn is
// complete already.
func Confirm(c net.Conn) error {
	if p, ok := c.(*pendingConn); ok {
		return p.confirm()
	}
	return nil
}
