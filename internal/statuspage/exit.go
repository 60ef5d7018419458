package statuspage

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/veilchain/veilchain/chain"
)

// exitTimeout bounds one ask through one chain.
const exitTimeout = 15 * time.Second

// askExits asks ExitEcho through each chain of Stats (never directly:
// a chain without hops is skipped) now and then every ExitEvery, and
// records the answers in Stats, until ctx ends.
func (s *Server) askExits(ctx context.Context) {
	every := s.ExitEvery
	if every <= 0 {
		every = time.Minute
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		var chains map[string]chain.Dialer
		if s.Stats != nil && s.Stats.Chains != nil {
			chains = s.Stats.Chains()
		}
		for _, name := range slices.Sorted(maps.Keys(chains)) {
			ch, ok := chains[name].(*chain.Chain)
			if !ok || len(ch.Hops) == 0 {
				continue
			}
			actx, cancel := context.WithTimeout(ctx, exitTimeout)
			addr, err := s.ExitEcho(actx, ch)
			cancel()
			if ctx.Err() != nil {
				return // stopping: what was asked is moot
			}
			s.Stats.SetExit(name, addr, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
