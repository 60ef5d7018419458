package chain_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/internal/testnet"
	"github.com/veilchain/veilchain/socks"
)

// hopServer is a SOCKS hop that can be stopped and started again on the
// same address, counting the connections it carried.
type hopServer struct {
	t    *testing.T
	addr string
	used atomic.Int32
	srv  *socks.Server
	done chan struct{}
}

func newHopServer(t *testing.T) *hopServer {
	h := &hopServer{t: t, addr: "127.0.0.1:0"}
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *hopServer) start() {
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	exit := &chain.Exit{AllowPrivate: true}
	h.srv = &socks.Server{Dialer: chain.DialerFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.used.Add(1)
		return exit.DialContext(ctx, network, addr)
	})}
	h.done = make(chan struct{})
	go func() { h.srv.Serve(ln); close(h.done) }()
}

func (h *hopServer) stop() {
	if h.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	h.srv.Shutdown(ctx)
	<-h.done
	h.srv = nil
}

func roundTrip(t *testing.T, c *chain.Chain, dest string) error {
	t.Helper()
	conn, err := c.DialContext(context.Background(), "tcp", dest)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	return nil
}

func TestDynamicSkipsDeadHopsAndTakesThemBack(t *testing.T) {
	dest := testnet.Echo(t)
	h1, h2, h3 := newHopServer(t), newHopServer(t), newHopServer(t)
	health := &chain.Health{Backoff: 100 * time.Millisecond}
	c := &chain.Chain{Mode: chain.Dynamic, Health: health, HandshakeTimeout: time.Second, Hops: []chain.Hop{
		&chain.SOCKS5{Address: h1.addr}, &chain.SOCKS5{Address: h2.addr}, &chain.SOCKS5{Address: h3.addr}}}
	if err := roundTrip(t, c, dest); err != nil || h2.used.Load() != 1 {
		t.Fatalf("all up: %v (hop 2 used %d times)", err, h2.used.Load())
	}
	h2.stop()
	if err := roundTrip(t, c, dest); err != nil {
		t.Fatalf("hop 2 down, dynamic: %v", err)
	}
	if health.Alive(c.Hops[1]) {
		t.Fatal("hop 2 failed but counts as alive")
	}
	strict := &chain.Chain{Hops: c.Hops, HandshakeTimeout: time.Second}
	var he *chain.HopError
	if err := roundTrip(t, strict, dest); !errors.As(err, &he) {
		t.Fatalf("hop 2 down, strict: err = %v, want a HopError", err)
	}
	h2.start() // same address
	time.Sleep(300 * time.Millisecond)
	if err := roundTrip(t, c, dest); err != nil || h2.used.Load() != 2 {
		t.Fatalf("hop 2 back: %v (hop 2 used %d times, want 2)", err, h2.used.Load())
	}
	// Every hop down: an error, never a direct connection.
	h1.stop()
	h2.stop()
	h3.stop()
	if err := roundTrip(t, c, dest); err == nil {
		t.Fatal("all hops down and the dial succeeded")
	}
}

func TestPoolFailover(t *testing.T) {
	dest := testnet.Echo(t)
	a, b := newHopServer(t), newHopServer(t)
	health := &chain.Health{Backoff: 100 * time.Millisecond}
	pool := &chain.Pool{Select: chain.Failover, Members: []chain.Hop{&chain.SOCKS5{Address: a.addr}, &chain.SOCKS5{Address: b.addr}}}
	c := &chain.Chain{Mode: chain.Dynamic, Health: health, Hops: []chain.Hop{pool}}
	if err := roundTrip(t, c, dest); err != nil || a.used.Load() != 1 || b.used.Load() != 0 {
		t.Fatalf("a up: %v (a %d, b %d)", err, a.used.Load(), b.used.Load())
	}
	a.stop()
	if err := roundTrip(t, c, dest); err != nil || b.used.Load() != 1 {
		t.Fatalf("a down: %v (b used %d)", err, b.used.Load())
	}
	a.start()
	time.Sleep(300 * time.Millisecond)
	if err := roundTrip(t, c, dest); err != nil || a.used.Load() != 2 {
		t.Fatalf("a back: %v (a used %d, want 2)", err, a.used.Load())
	}
}

func TestProbe(t *testing.T) {
	h1, h2 := newHopServer(t), newHopServer(t)
	authed := &socks.Server{Dialer: &chain.Exit{AllowPrivate: true}, Auth: socks.Credentials{"u": "p"}}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go authed.Serve(ln)
	defer authed.Shutdown(context.Background())
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()

	health := &chain.Health{Backoff: time.Hour}
	c := &chain.Chain{Health: health, HandshakeTimeout: time.Second, Hops: []chain.Hop{
		&chain.SOCKS5{Address: h1.addr},
		&chain.Pool{Members: []chain.Hop{&chain.SOCKS5{Address: h2.addr}, &chain.SOCKS5{Address: deadAddr}}},
		&chain.SOCKS5{Address: ln.Addr().String(), User: "u", Password: "wrong"},
	}}
	before := h2.used.Load()
	reports := c.Probe(context.Background())
	if len(reports) != 4 {
		t.Fatalf("%d reports, want one per hop and pool member: %+v", len(reports), reports)
	}
	want := []struct {
		reachable bool
		auth      string
	}{{true, "ok"}, {true, "ok"}, {false, "n/a"}, {true, "refused"}}
	for i, w := range want {
		if reports[i].Reachable != w.reachable || reports[i].Auth != w.auth {
			t.Errorf("report %d = %+v, want reachable=%v auth=%s", i, reports[i], w.reachable, w.auth)
		}
	}
	if health.Alive(c.Hops[1].(*chain.Pool).Members[1]) || health.Alive(c.Hops[2]) || !health.Alive(c.Hops[0]) {
		t.Error("probe results did not reach Health")
	}
	// Probing reached hop 3 through hop 2 (a CONNECT to a hop address),
	// and nothing else: no destination was asked for.
	if n := h2.used.Load() - before; n != 1 {
		t.Errorf("hop 2 connected onward %d times during the probe, want 1 (to hop 3)", n)
	}
}

// A pool tries its next member within the same dial when one cannot be
// reached, in a strict chain too: the first client after a member dies
// gets through, and the dead member is marked for the ones after.
func TestPoolFailsOverWithinOneDial(t *testing.T) {
	dest := testnet.Echo(t)
	deadAddr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	for _, tt := range []struct {
		name string
		mode chain.Mode
		sel  chain.Selector
		// where the pool stands, and its members: "dead" or "live"
		poolAt  int
		members []string
		ok      bool
	}{
		{"strict, pool second", chain.Strict, chain.Failover, 1, []string{"dead", "live"}, true},
		{"strict, pool first", chain.Strict, chain.Failover, 0, []string{"dead", "live"}, true},
		{"strict, two dead", chain.Strict, chain.Failover, 1, []string{"dead", "dead", "live"}, true},
		{"strict, round-robin", chain.Strict, chain.RoundRobinSelect, 1, []string{"dead", "live"}, true},
		{"dynamic, pool second", chain.Dynamic, chain.Failover, 1, []string{"dead", "live"}, true},
		{"strict, all dead", chain.Strict, chain.Failover, 1, []string{"dead", "dead"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pool := &chain.Pool{Select: tt.sel}
			var live *hopServer
			for _, m := range tt.members {
				addr := deadAddr()
				if m == "live" {
					live = newHopServer(t)
					addr = live.addr
				}
				pool.Members = append(pool.Members, &chain.SOCKS5{Address: addr})
			}
			other := newHopServer(t)
			hops := []chain.Hop{&chain.SOCKS5{Address: other.addr}}
			hops = slices.Insert(hops, tt.poolAt, chain.Hop(pool))
			health := &chain.Health{Backoff: time.Hour}
			c := &chain.Chain{Mode: tt.mode, Health: health, HandshakeTimeout: time.Second, Hops: hops}
			err := roundTrip(t, c, dest)
			if !tt.ok {
				var he *chain.HopError
				if !errors.As(err, &he) {
					t.Fatalf("every member dead: err = %v, want a HopError", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("first connection after a member died: %v", err)
			}
			for i, m := range tt.members {
				if m == "dead" && health.Alive(pool.Members[i]) {
					t.Errorf("dead member %d still counts as alive", i+1)
				}
			}
			if err := roundTrip(t, c, dest); err != nil {
				t.Fatalf("second connection: %v", err)
			}
		})
	}
}

// A strict chain still fails when a hop that is not in a pool fails.
func TestStrictDoesNotRetryPlainHops(t *testing.T) {
	dest := testnet.Echo(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	h := newHopServer(t)
	c := &chain.Chain{HandshakeTimeout: time.Second, Hops: []chain.Hop{&chain.SOCKS5{Address: h.addr}, &chain.SOCKS5{Address: dead}}}
	if err := roundTrip(t, c, dest); err == nil {
		t.Fatal("strict chain with a dead hop connected")
	}
	if n := h.used.Load(); n != 1 {
		t.Errorf("hop 1 connected onward %d times, want 1: a strict chain tries once", n)
	}
}

// Health says when a hop is found dead and when it is back, at warn
// level, with the hop's position and address; further failures of a dead
// hop are debug lines. No destination appears in either.
func TestHealthLogsHopChanges(t *testing.T) {
	dest := testnet.Echo(t)
	for _, tt := range []struct {
		name  string
		mode  chain.Mode
		build func(h1, h2, spare *hopServer) []chain.Hop
		where string // the position attributes of h2 in the log
	}{
		{"strict, plain hop", chain.Strict, func(h1, h2, _ *hopServer) []chain.Hop {
			return []chain.Hop{&chain.SOCKS5{Address: h1.addr}, &chain.SOCKS5{Address: h2.addr}}
		}, "hop=2 hop_addr="},
		{"dynamic, plain hop", chain.Dynamic, func(h1, h2, _ *hopServer) []chain.Hop {
			return []chain.Hop{&chain.SOCKS5{Address: h1.addr}, &chain.SOCKS5{Address: h2.addr}}
		}, "hop=2 hop_addr="},
		{"strict, pool member", chain.Strict, func(h1, h2, spare *hopServer) []chain.Hop {
			return []chain.Hop{&chain.SOCKS5{Address: h1.addr},
				&chain.Pool{Members: []chain.Hop{&chain.SOCKS5{Address: h2.addr}, &chain.SOCKS5{Address: spare.addr}}}}
		}, "hop=2 member=1 hop_addr="},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs testnet.LogBuffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			h1, h2, spare := newHopServer(t), newHopServer(t), newHopServer(t)
			// A dead period far longer than the test: only a success ends it.
			health := &chain.Health{Backoff: time.Hour, Logger: log}
			c := &chain.Chain{Mode: tt.mode, Health: health, HandshakeTimeout: time.Second, Hops: tt.build(h1, h2, spare)}
			h2Line := tt.where + h2.addr
			find := func(out, level, msg string) bool {
				for _, l := range strings.Split(out, "\n") {
					if strings.Contains(l, "level="+level) && strings.Contains(l, `msg="`+msg+`"`) && strings.Contains(l, h2Line) {
						return true
					}
				}
				return false
			}
			roundTrip(t, c, dest)
			if out := logs.Take(); out != "" {
				t.Fatalf("all up, Health logged: %s", out)
			}
			h2.stop()
			roundTrip(t, c, dest)
			out := logs.Take()
			if !find(out, "WARN", "hop dead") {
				t.Errorf("hop 2 went down; log has no warning %q:\n%s", h2Line, out)
			}
			if strings.Contains(out, dest) {
				t.Errorf("the destination is in the log:\n%s", out)
			}
			if tt.mode == chain.Strict && !strings.Contains(tt.where, "member") {
				roundTrip(t, c, dest) // a strict chain tries the dead hop again
				if out := logs.Take(); strings.Contains(out, "WARN") || !find(out, "DEBUG", "hop still dead") {
					t.Errorf("a dead hop failed again; want one debug line and no warning:\n%s", out)
				}
			}
			h2.start()
			c.Probe(context.Background()) // reaches every hop, h2 although it counts as dead
			out = logs.Take()
			if !find(out, "WARN", "hop back alive") {
				t.Errorf("hop 2 came back; log has no warning %q:\n%s", h2Line, out)
			}
			if strings.Contains(out, dest) || strings.Contains(out, "hop_addr="+h1.addr) {
				t.Errorf("the log names the destination or a hop that did not change:\n%s", out)
			}
		})
	}
}
