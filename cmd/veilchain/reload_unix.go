//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/veilchain/veilchain/configs"
)

// reloadRequests: on Unix a reload is asked for with SIGHUP. Signals
// that come while a reload runs ask for one more, not one each.
func reloadRequests(func() (*configs.Config, error)) (requests <-chan struct{}, stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	req := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				select {
				case req <- struct{}{}:
				default: // one is pending already
				}
			case <-done:
				return
			}
		}
	}()
	return req, func() {
		signal.Stop(hup)
		close(done)
	}
}
