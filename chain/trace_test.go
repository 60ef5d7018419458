package chain

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/veilchain/veilchain/internal/testnet"
)

// TestTraceTellsHopsAndPath: a dial through two hops tells its Trace of
// each handshake, by its place in the path, and the path taken; for a
// pool, the member picked.
func TestTraceTellsHopsAndPath(t *testing.T) {
	echo := testnet.Echo(t)
	h1, h2a, h2b := socksHop(t, nil), socksHop(t, nil), socksHop(t, nil)
	for _, tc := range []struct {
		name     string
		hops     []Hop
		wantPath []string
	}{
		{"strict", []Hop{&SOCKS5{Address: h1}, &SOCKS5{Address: h2a}}, []string{h1, h2a}},
		{"pool picks its first live member", []Hop{&SOCKS5{Address: h1},
			&Pool{Members: []Hop{&SOCKS5{Address: h2b}, &SOCKS5{Address: h2a}}}}, []string{h1, h2b}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var hops, path []string
			tr := &Trace{
				Hop: func(i int, addr string, took time.Duration) {
					mu.Lock()
					defer mu.Unlock()
					if took <= 0 {
						t.Errorf("hop %d took %v", i, took)
					}
					hops = append(hops, addr)
					if len(hops) != i+1 {
						t.Errorf("hop %s told as index %d, after %d others", addr, i, len(hops)-1)
					}
				},
				Path: func(addrs []string) { path = addrs },
			}
			c := &Chain{Hops: tc.hops}
			conn, err := c.DialContext(WithTrace(context.Background(), tr), "tcp", echo)
			if err != nil {
				t.Fatal(err)
			}
			conn.Close()
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(hops, tc.wantPath) || !slices.Equal(path, tc.wantPath) {
				t.Errorf("hops %v, path %v; want %v", hops, path, tc.wantPath)
			}
		})
	}
}

// TestRelayCounts: a relay given Counts ends with them equal to the byte
// counts it returns, spliced (TCP both sides) or not.
func TestRelayCounts(t *testing.T) {
	for _, tc := range []struct {
		name string
		tcp  bool
	}{{"tcp", true}, {"pipe", false}} {
		t.Run(tc.name, func(t *testing.T) {
			var client, a, b, server net.Conn
			if tc.tcp {
				client, a = pair(t)
				b, server = pair(t)
			} else {
				client, a = net.Pipe()
				b, server = net.Pipe()
			}
			var counts Counts
			type res struct{ up, down int64 }
			done := make(chan res, 1)
			StartRelay(WithCounts(context.Background(), &counts), a, b, 0, func(up, down int64, _ error) { done <- res{up, down} })
			up := make([]byte, 300<<10)
			rand.Read(up)
			go func() {
				client.Write(up)
				if cw, ok := client.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
			}()
			if got, _ := io.ReadFull(server, make([]byte, len(up))); got != len(up) {
				t.Fatalf("server got %d bytes", got)
			}
			server.Write([]byte("answer"))
			server.Close()
			io.ReadAll(client)
			client.Close()
			r := <-done
			if r.up != int64(len(up)) || counts[0].Load() != r.up || counts[1].Load() != r.down {
				t.Errorf("relay said %d up, %d down; counts %d, %d", r.up, r.down, counts[0].Load(), counts[1].Load())
			}
		})
	}
}

// TestRelayCountsWhileLive: the counts grow while a connection lasts,
// not only when it ends, for every kind of relay (what a status view
// shows of a long download); here between pipes, which are copied.
func TestRelayCountsWhileLive(t *testing.T) {
	client, a := net.Pipe()
	b, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	var counts Counts
	done := make(chan struct{})
	StartRelay(WithCounts(context.Background(), &counts), a, b, 0, func(int64, int64, error) { close(done) })
	go client.Write(make([]byte, 1000))
	if _, err := io.ReadFull(server, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	// The count follows the write that delivered the bytes: allow it the
	// moment between the two.
	deadline := time.Now().Add(2 * time.Second)
	for counts[0].Load() != 1000 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := counts[0].Load(); n != 1000 {
		t.Errorf("live count %d while the connection is open, want 1000", n)
	}
	client.Close()
	server.Close()
	<-done
}
