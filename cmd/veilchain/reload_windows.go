package main

import (
	"time"

	"github.com/veilchain/veilchain/configs"
)

// reloadRequests: Windows has no SIGHUP (syscall.SIGHUP exists there but
// is never delivered), so a reload is asked for by changing what a
// reload reads: the config and its block lists, looked at every 2 s (see
// configFingerprint). A hop's ca= file is read again with the next such
// change. `veilchain reload`, through the control socket, is the
// explicit way.
func reloadRequests(load func() (*configs.Config, error)) (requests <-chan struct{}, stop func()) {
	t := time.NewTicker(2 * time.Second)
	requests, stopPoll := pollChanges(func() string { return configFingerprint(load) }, t.C)
	return requests, func() {
		t.Stop()
		stopPoll()
	}
}
