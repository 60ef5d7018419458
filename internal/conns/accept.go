package conns

import (
	"log/slog"
	"time"
)

// acceptFailed is what an accept loop does when Accept fails with
// anything but a closed listener (out of file descriptors, most often):
// it says so at warn (a rate-limiting logger turns a storm of them into a
// line now and then), and returns how long to wait before accepting
// again, doubling from 5 ms to a second. Clients wait in the backlog
// meanwhile and are taken as soon as descriptors free up.
func acceptFailed(log *slog.Logger, err error, backoff time.Duration) time.Duration {
	if log != nil {
		log.Warn("cannot accept connections; clients wait until descriptors free up (raise ulimit -n?)", "err", err)
	}
	return min(max(2*backoff, 5*time.Millisecond), time.Second)
}
