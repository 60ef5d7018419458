package main

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/veilchain/veilchain/configs"
)

// A config whose first hop is one of our own listeners is refused at
// start, however the hop names it; hops that are not first, other
// machines and other ports are not.
func TestRefuseLoops(t *testing.T) {
	tcp := func(s string) net.Addr {
		a, err := net.ResolveTCPAddr("tcp", s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	loop4 := []net.Addr{tcp("127.0.0.1:1080"), tcp("127.0.0.1:8118")}
	for _, tt := range []struct {
		name      string
		listening []net.Addr
		mode      string
		hops      []configs.Hop
		want      string // "" passes
	}{
		{"same address", loop4, "", hops("socks5://127.0.0.1:1080"), `chain "main", hop 1: 127.0.0.1:1080 is this process's own listener 127.0.0.1:1080`},
		{"default port", loop4, "", hops("socks5://127.0.0.1"), "without a port means port 1080"},
		{"http front end", loop4, "", hops("http://u:p@127.0.0.1:8118"), "own listener 127.0.0.1:8118"},
		{"localhost", loop4, "", hops("socks5://localhost:1080"), "localhost:1080 is this process's own listener"},
		{"0.0.0.0 hop", loop4, "", hops("socks5://0.0.0.0:1080"), "own listener"},
		{"::1 listener", []net.Addr{tcp("[::1]:1095")}, "", hops("socks5://[::1]:1095"), "own listener"},
		{"0.0.0.0 listener", []net.Addr{tcp("0.0.0.0:1095")}, "", hops("socks5://127.0.0.1:1095"), "own listener 0.0.0.0:1095"},
		{"pool member", loop4, "", []configs.Hop{{Pool: []string{"socks5://192.0.2.1:1080", "socks5://127.0.0.1:1080"}}}, "own listener"},
		{"second hop of a random chain", loop4, "random", hops("socks5://192.0.2.1:1080", "socks5://127.0.0.1:1080"), "hop 2"},
		{"second hop of a strict chain", loop4, "", hops("socks5://192.0.2.1:1080", "socks5://127.0.0.1:1080"), ""},
		{"other port", loop4, "", hops("socks5://127.0.0.1:9001"), ""},
		{"other loopback address", loop4, "", hops("socks5://127.0.0.2:1080"), ""},
		{"other machine", loop4, "", hops("socks5://192.0.2.1:1080"), ""},
		{"a name", loop4, "", hops("socks5://proxy.example:1080"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := configs.Default()
			cfg.Chains = map[string]configs.Chain{"main": {Hops: tt.hops, Mode: tt.mode}}
			err := refuseLoops(cfg, tt.listening)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func hops(urls ...string) []configs.Hop {
	var hs []configs.Hop
	for _, u := range urls {
		hs = append(hs, configs.Hop{URL: u})
	}
	return hs
}

// run refuses to start when its first hop is its own SOCKS port.
func TestRunRefusesItsOwnListenerAsFirstHop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a free port for run to take
	// Should it start after all, it stops at the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	app := newApp()
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	err = app.RunContext(ctx, []string{"veilchain", "run", "--log-level", "error", "--socks", addr, "--http", "", "--hop", "socks5://" + addr})
	if err == nil || !strings.Contains(err.Error(), "own listener") {
		t.Fatalf("run: %v, want a refusal", err)
	}
}
