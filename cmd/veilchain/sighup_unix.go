//go:build unix

package main

import (
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// serveOnSIGHUP keeps serve alive on SIGHUP (whose default action ends a
// process: a closed terminal, or a habit of sending it for a reload, as
// run's users do) until stop is called. serve has nothing to reload yet:
// its users and allow-list come from flags, which cannot change, so each
// SIGHUP is logged as ignored.
func serveOnSIGHUP(log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP ignored: serve has nothing to reload (its users and allow-list come from flags, which cannot change; restart it to change them)")
			case <-done:
				return
			}
		}
	})
	return func() {
		signal.Stop(hup)
		close(done)
		wg.Wait()
	}
}
