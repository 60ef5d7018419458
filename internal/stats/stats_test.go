package stats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/veilchain/veilchain/chain"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeDial plays what a Router and a Chain tell a dial's Trace.
func fakeDial(ctx context.Context, chainName string, path []string) {
	chain.TellChain(ctx, chainName)
	tr := chain.TraceFrom(ctx)
	for i, a := range path {
		tr.Hop(i, a, time.Duration(i+1)*20*time.Millisecond)
	}
	tr.Path(path)
}

// TestCountersUnderConcurrentConnections: many connections at once (run
// with -race) add up exactly, per listener, chain and hop position, live
// bytes included while they are open.
func TestCountersUnderConcurrentConnections(t *testing.T) {
	reg := &Registry{}
	const n = 50
	path := []string{"hop1:1", "exit:2"}
	var wg sync.WaitGroup
	opened := make(chan *Conn, n)
	for i := range n {
		wg.Go(func() {
			ctx, d := reg.Dial(context.Background(), "main", "alice", fmt.Sprintf("dest%d.example:443", i))
			fakeDial(ctx, "work", path)
			c := d.Connected()
			c.Add(0, 100)
			c.Add(1, 1000)
			opened <- c
		})
	}
	wg.Wait()
	close(opened)
	st := reg.Status()
	if len(st.Connections) != n || st.Connections[0].Chain != "work" || st.Connections[0].Hops[1] != "exit:2" ||
		st.Connections[0].User != "alice" || !strings.HasPrefix(st.Connections[0].Dest, "dest") {
		t.Fatalf("live connections: %d, first %+v", len(st.Connections), st.Connections[0])
	}
	if l := st.Listeners[0]; l.Open != n || l.BytesUp != 100*n || l.BytesDown != 1000*n {
		t.Errorf("listener while open: %+v", l)
	}
	for c := range opened {
		wg.Go(func() { c.Closed(c.Bytes()) })
	}
	wg.Wait()
	st = reg.Status()
	if len(st.Connections) != 0 {
		t.Errorf("%d connections left", len(st.Connections))
	}
	for _, tc := range []struct {
		name string
		got  Totals
	}{
		{"listener", st.Listeners[0].Totals},
		{"chain", st.Chains[0].Totals},
	} {
		if tc.got.Open != 0 || tc.got.Total != n || tc.got.BytesUp != 100*n || tc.got.BytesDown != 1000*n {
			t.Errorf("%s: %+v", tc.name, tc.got)
		}
	}
	if st.Chains[0].Latency.Count != n {
		t.Errorf("chain latency count %d, want %d", st.Chains[0].Latency.Count, n)
	}
}

// TestFailedKeepsNoDestination: a failed dial counts at the listener, the
// chain and the hop position the HopError names, and keeps an error text
// without the destination.
func TestFailedKeepsNoDestination(t *testing.T) {
	const dest = "secret.example:443"
	for _, tc := range []struct {
		name    string
		err     error
		wantHop int // 0: no position blamed
		want    string
	}{
		{"hop", &chain.HopError{Index: 1, Addr: "exit:2", Err: errors.New("connection refused")}, 2, "hop 2 (exit:2)"},
		{"policy", fmt.Errorf("%w (rule 1 %q)", chain.ErrBlocked, "ads"), 0, "refused by policy"},
		{"other", fmt.Errorf("dial %s: no", dest), 0, "connect failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := &Registry{Chains: func() map[string]chain.Dialer {
				return map[string]chain.Dialer{"work": &chain.Chain{Hops: []chain.Hop{&chain.SOCKS5{Address: "hop1:1"}, &chain.SOCKS5{Address: "exit:2"}}}}
			}}
			ctx, d := reg.Dial(context.Background(), "main", "", dest)
			chain.TellChain(ctx, "work")
			d.Failed(tc.err)
			st := reg.Status()
			if st.Listeners[0].Failed != 1 || st.Chains[0].Failed != 1 || !strings.Contains(st.Chains[0].LastError, tc.want) {
				t.Errorf("listener %+v, chain %+v", st.Listeners[0].Totals, st.Chains[0].Totals)
			}
			for i, h := range st.Chains[0].Hops {
				if want := int64(0); i+1 == tc.wantHop {
					want = 1
					if h.Failed != want {
						t.Errorf("hop %d failed %d, want %d", i+1, h.Failed, want)
					}
				}
				if h.Members[0].Health != "unknown" {
					t.Errorf("hop %d health %q with no Health", i+1, h.Members[0].Health)
				}
			}
			if strings.Contains(fmt.Sprint(st.Listeners, st.Chains), "secret") {
				t.Errorf("destination in the counters: %+v", st)
			}
		})
	}
}

func TestNilRegistryRecordsNothing(t *testing.T) {
	var reg *Registry
	ctx, d := reg.Dial(context.Background(), "main", "", "x:1")
	d.Failed(errors.New("x"))
	c := d.Connected()
	c.Add(0, 1)
	c.Closed(1, 1)
	if c.Relay(ctx) != ctx || reg.Status().Version != Version {
		t.Fatal("a nil registry changed something")
	}
}

// TestDirectRuleShowsAsDirect: connections a direct rule carries count
// under "direct", shown as a direct chain, with no hops.
func TestDirectRuleShowsAsDirect(t *testing.T) {
	reg := &Registry{}
	ctx, d := reg.Dial(context.Background(), "main", "", "x.example:80")
	chain.TellChain(ctx, "direct")
	d.Connected().Closed(1, 2)
	st := reg.Status()
	if len(st.Chains) != 1 || st.Chains[0].Name != "direct" || !st.Chains[0].Direct || st.Chains[0].Total != 1 {
		t.Fatalf("chains: %+v", st.Chains)
	}
}

// TestThroughputRing: the first Add is a baseline; each later one keeps
// what was relayed since, never less than nothing; a full ring keeps the
// newest Len samples, oldest first.
func TestThroughputRing(t *testing.T) {
	tp := &Throughput{Len: 3}
	t0 := time.Unix(1000, 0)
	for i, b := range [][2]int64{{10, 20}, {15, 120}, {15, 120}, {40, 100}, {50, 300}} {
		tp.Add(t0.Add(time.Duration(i)*time.Second), b[0], b[1])
	}
	got := tp.Samples()
	want := []Sample{{t0.Add(2 * time.Second), 0, 0}, {t0.Add(3 * time.Second), 25, 0}, {t0.Add(4 * time.Second), 10, 200}}
	if !slices.Equal(got, want) {
		t.Fatalf("samples %v, want %v", got, want)
	}
}

// TestBytes: a connection's bytes count once in the totals, while it is
// live and after it closed.
func TestBytes(t *testing.T) {
	r := &Registry{}
	_, d := r.Dial(context.Background(), "l", "", "dest:1")
	c := d.Connected()
	c.Add(0, 7)
	c.Add(1, 70)
	if up, down := r.Bytes(); up != 7 || down != 70 {
		t.Fatalf("live: %d up, %d down", up, down)
	}
	c.Closed(7, 70)
	if up, down := r.Bytes(); up != 7 || down != 70 {
		t.Fatalf("closed: %d up, %d down", up, down)
	}
}
