package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/configs"
	"github.com/veilchain/veilchain/resolver"
)

// The fake-ip range is reserved only when a fake-ip DNS front end hands
// fake addresses out, and the start says which range: otherwise a literal
// address in it is a destination like any other.
func TestFakeRangeReservedOnlyWithFakeIPDNS(t *testing.T) {
	for _, tt := range []struct {
		name, dns, mode string
		reserved        bool
	}{
		{"no DNS front end", "", "fake-ip", false},
		{"forward DNS front end", "127.0.0.1:5353", "forward", false},
		{"fake-ip DNS front end", "127.0.0.1:5353", "fake-ip", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := configs.Default()
			cfg.Listeners[0].DNS, cfg.DNS.Mode = tt.dns, tt.mode
			var asked string
			next := chain.DialerFunc(func(_ context.Context, _, addr string) (net.Conn, error) {
				asked = addr
				return nil, errors.New("test dialer")
			})
			var logs strings.Builder
			d, pool := frontDialer(cfg, next, slog.New(slog.NewTextHandler(&logs, nil)))
			_, err := d.DialContext(context.Background(), "tcp", "198.18.0.20:80")
			if tt.reserved {
				if !errors.Is(err, resolver.ErrUnmapped) || pool == nil {
					t.Fatalf("dial: %v, pool %t; want the fake range reserved", err, pool != nil)
				}
				if !strings.Contains(logs.String(), "ipv4=198.18.0.0/15") {
					t.Fatalf("start log does not name the range:\n%s", logs.String())
				}
				return
			}
			if asked != "198.18.0.20:80" || pool != nil {
				t.Fatalf("the chain was asked for %q (pool %t), want 198.18.0.20:80", asked, pool != nil)
			}
			if logs.Len() != 0 {
				t.Fatalf("logged:\n%s", logs.String())
			}
		})
	}
}
