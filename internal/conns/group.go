// Package conns owns the goroutines of a front end's connections: it
// accepts, runs one handler per connection, and on Shutdown stops
// accepting, waits for live connections, then cuts the stragglers.
package conns

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ErrClosed is returned by Serve after Shutdown.
var ErrClosed = errors.New("server closed")

// Group serves listeners. Its zero value is ready to use.
type Group struct {
	logger *slog.Logger // hears of accept failures; guarded by mu

	mu     sync.Mutex
	lns    map[net.Listener]struct{}
	wg     sync.WaitGroup
	ctx    context.Context // ends when Shutdown gives up waiting
	cancel context.CancelFunc
	drain  context.Context // ends when Shutdown starts
	stop   context.CancelFunc
	closed bool
}

func (g *Group) init() {
	if g.ctx == nil {
		g.ctx, g.cancel = context.WithCancel(context.Background())
		g.drain, g.stop = context.WithCancel(context.Background())
		g.lns = make(map[net.Listener]struct{})
	}
}

// SetLogger makes accept failures logged to log.
func (g *Group) SetLogger(log *slog.Logger) {
	g.mu.Lock()
	g.logger = log
	g.mu.Unlock()
}

// Draining returns a context that ends as soon as Shutdown starts:
// handlers use it to end connections that are idle or still in their
// handshake, which have nothing to finish.
func (g *Group) Draining() context.Context {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.init()
	return g.drain
}

// Serve accepts on ln and runs handle for each connection in its own
// goroutine, with a context that ends when Shutdown gives up waiting. The
// handler must close the conn. Serve returns ErrClosed after Shutdown.
func (g *Group) Serve(ln net.Listener, handle func(context.Context, net.Conn)) error {
	g.mu.Lock()
	g.init()
	if g.closed {
		g.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	g.lns[ln] = struct{}{}
	g.wg.Add(1) // the accept loop itself, so Shutdown waits for it
	g.mu.Unlock()
	defer g.wg.Done()
	if d, ok := ln.(interface{ serveDirect(func(net.Conn) bool) }); ok {
		// A Split listener runs handle on the goroutine that routed the
		// conn; Accept below still ends this loop when ln closes.
		d.serveDirect(func(c net.Conn) bool {
			g.mu.Lock()
			if g.closed {
				g.mu.Unlock()
				return false
			}
			g.wg.Add(1)
			g.mu.Unlock()
			defer g.wg.Done()
			handle(g.ctx, c)
			return true
		})
	}

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			g.mu.Lock()
			closed := g.closed
			g.mu.Unlock()
			if closed {
				return ErrClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			g.mu.Lock()
			log := g.logger
			g.mu.Unlock()
			backoff = acceptFailed(log, err, backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-g.ctx.Done():
				return ErrClosed
			}
		}
		backoff = 0
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			c.Close()
			return ErrClosed
		}
		g.wg.Add(1)
		g.mu.Unlock()
		go func() {
			defer g.wg.Done()
			handle(g.ctx, c)
		}()
	}
}

// Shutdown closes the listeners and waits for live connections to finish.
// When ctx ends first, it cancels their context (relays close their conns),
// waits for the handlers to return, and returns ctx's error.
func (g *Group) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.init()
	g.closed = true
	for ln := range g.lns {
		ln.Close()
	}
	g.stop()
	g.mu.Unlock()

	idle := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		g.cancel()
		return nil
	case <-ctx.Done():
		g.cancel()
		<-idle
		return ctx.Err()
	}
}

// Hold counts work that runs on goroutines of its own (chain.StartRelay)
// as a live connection, until release is called: Shutdown waits for it,
// and ctx, the handlers' context, ends when Shutdown gives up waiting.
// A handler hands its relay over this way and returns, so the relay
// keeps neither the handshake's deep stack nor a goroutine waiting on it.
func (g *Group) Hold() (ctx context.Context, release func()) {
	g.mu.Lock()
	g.init()
	g.wg.Add(1) // a handler calls this while it is itself counted, so Wait cannot have returned
	ctx = g.ctx
	g.mu.Unlock()
	var once sync.Once
	return ctx, func() { once.Do(g.wg.Done) }
}
