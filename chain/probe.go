package chain

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"time"
)

// HopReport is what a probe found out about one hop.
type HopReport struct {
	Position  int           `json:"position"` // 1-based position in the chain
	Addr      string        `json:"addr"`
	Reachable bool          `json:"reachable"`
	Latency   time.Duration `json:"latency_ns"` // reaching it through the hops before, and its greeting
	Auth      string        `json:"auth"`       // "ok", "refused", or "n/a" for hop types without a check
	Encrypted string        `json:"encrypted"`  // "yes (pinned)", "yes (CA)", "yes (host key)", "yes (unverified)" or "no"
	Err       string        `json:"error,omitempty"`
	// SSH hops: the host key's fingerprint (verified when Auth is
	// "ok"), the auth method the server accepted, and how long opening
	// a channel took on the open connection.
	HostKey     string        `json:"host_key,omitempty"`
	AuthMethod  string        `json:"auth_method,omitempty"`
	ChannelOpen time.Duration `json:"channel_open_ns,omitempty"`
}

// prober is a hop that can check its greeting and auth without asking
// to connect anywhere.
type prober interface {
	Probe(ctx context.Context, conn net.Conn) error
}

// Probe checks every hop (every member of a pool) by reaching it through
// the hops before it, as the current plan would take them, and running
// what its protocol allows without a CONNECT. The destination side is
// never touched. Results feed Health.
func (c *Chain) Probe(ctx context.Context) []HopReport {
	var reports []HopReport
	var prefix []Hop
	for i, pos := range c.Hops {
		members := membersOf(pos)
		for _, m := range members {
			reports = append(reports, c.probeOne(ctx, i, prefix, m))
		}
		next := pos
		if p, ok := pos.(*Pool); ok {
			next = p.pick(c.Health, nil)
		}
		prefix = append(prefix, next)
	}
	return reports
}

func (c *Chain) probeOne(ctx context.Context, i int, prefix []Hop, h Hop) HopReport {
	r := HopReport{Position: i + 1, Addr: h.Addr(), Auth: "n/a", Encrypted: "no"}
	if s := Security(h); s != "" {
		r.Encrypted = "yes (" + s + ")"
	}
	start := time.Now()
	var conn net.Conn
	var err error
	if len(prefix) == 0 {
		conn, err = c.forward().DialContext(ctx, "tcp", h.Addr())
		if err != nil {
			c.failed(h)
		}
	} else {
		var failed Hop
		conn, failed, err = c.dialThrough(ctx, prefix, h.Addr())
		if err != nil && failed == nil {
			c.failed(h) // the hop before could not reach it
		}
	}
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer conn.Close()
	r.Reachable = true
	if s, ok := h.(*SSH); ok {
		if err := s.probe(ctx, conn, c.timeout(h), &r); err != nil {
			if r.Auth != "ok" { // else auth went through, and the channel failed
				r.Auth = "n/a"
				if errors.Is(err, ErrHopAuth) {
					r.Auth = "refused"
				}
			}
			r.Err = err.Error()
			c.failed(h)
			return r
		}
	} else if p, ok := h.(prober); ok {
		conn.SetDeadline(time.Now().Add(c.timeout(h)))
		if err := p.Probe(ctx, conn); err != nil {
			r.Auth = "refused"
			if !errors.Is(err, ErrHopAuth) {
				r.Auth = "n/a"
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = fmt.Errorf("handshake timed out after %v: %w", c.timeout(h), err)
			}
			r.Err = err.Error()
			c.failed(h)
			return r
		}
		r.Auth = "ok"
	}
	r.Latency = time.Since(start)
	c.succeeded(h, r.Latency)
	return r
}

// ProbeFirst checks the first position of the chain (each member of a
// pool there) as Probe does: the one a program would wait on first, and
// the one whose address is typed by hand.
func (c *Chain) ProbeFirst(ctx context.Context) []HopReport {
	members := membersOf(c.Hops[0])
	var reports []HopReport
	for _, m := range members {
		reports = append(reports, c.probeOne(ctx, 0, nil, m))
	}
	return reports
}

// CheckEvery probes the chain every interval (with ±20% jitter, so that
// many chains do not probe in step) until ctx ends.
func (c *Chain) CheckEvery(ctx context.Context, interval time.Duration) {
	for {
		d := interval + time.Duration(rand.Int64N(int64(interval)*2/5+1)) - interval/5
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		pctx, cancel := context.WithTimeout(ctx, interval)
		c.Probe(pctx)
		cancel()
	}
}
