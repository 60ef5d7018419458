package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/veilchain/veilchain/internal/conns"
)

// frontEnd is what socks.Server and httpproxy.Server have in common.
type frontEnd interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// server is a front end bound to its listener.
type server struct {
	srv frontEnd
	ln  net.Listener
}

// serveUntilDone serves until ctx ends (SIGINT/SIGTERM) or a listener
// fails, then stops accepting and gives live connections grace to finish.
func serveUntilDone(ctx context.Context, log *slog.Logger, grace time.Duration, servers []server) error {
	failed := make(chan error, len(servers))
	for _, s := range servers {
		go func() {
			if err := s.srv.Serve(s.ln); !errors.Is(err, conns.ErrClosed) {
				failed <- err
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
		log.Info("stopping: no new connections; live ones get a grace period", "grace", grace)
	case err = <-failed:
		log.Error("listener failed", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	// All at once: no listener may keep accepting while another drains.
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() {
			if s.srv.Shutdown(sctx) != nil {
				log.Warn("grace period over: closed remaining connections", "listener", s.ln.Addr().String())
			}
		})
	}
	wg.Wait()
	return err
}
