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
// run's users do) until stop is called, and runs reload on each (the
// users file); with nothing to reload (nil: users from flags, which
// cannot change), each SIGHUP is logged as ignored.
func serveOnSIGHUP(log *slog.Logger, reload func() error) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-hup:
				if reload == nil {
					log.Info("SIGHUP ignored: serve has nothing to reload (its users and allow-list come from flags, which cannot change; restart it to change them, or give --users-file)")
					continue
				}
				if err := reload(); err != nil {
					log.Error("reload failed: the running users stay", "err", err)
					continue
				}
				log.Info("reload: users file read again")
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
