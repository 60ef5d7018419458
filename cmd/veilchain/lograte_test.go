package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/veilchain/veilchain/internal/testnet"
)

// Lines of one kind (message and attributes but the client) go out once
// per interval, the next saying how many were held back; other kinds,
// and debug lines, are not held back.
func TestRateHandler(t *testing.T) {
	var out testnet.LogBuffer
	h := newRateHandler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}), 10*time.Second)
	now := time.Unix(1000, 0)
	h.state.now = func() time.Time { return now }
	log := slog.New(h).With("listener", "a")
	for i := range 4000 {
		c := log.With("client", "127.0.0.1:"+string(rune('0'+i%10)))
		c.Warn("chain failed", "hop", 2, "hop_addr", "198.18.0.3:1080", "err", "connection refused")
		c.Debug("connect failed", "dest", "x.example:80")
	}
	log.Warn("chain failed", "hop", 1, "hop_addr", "198.18.0.2:1080", "err", "connection refused")
	now = now.Add(11 * time.Second)
	log.With("client", "127.0.0.1:9").Warn("chain failed", "hop", 2, "hop_addr", "198.18.0.3:1080", "err", "connection refused")
	text := out.String()
	if n := strings.Count(text, "hop=2"); n != 2 {
		t.Errorf("%d lines for hop 2's failures, want 2 (the first, then one after the interval)", n)
	}
	if !strings.Contains(text, "repeated=3999") {
		t.Errorf("no repeated=3999 on the line after the interval:\n%s", text[len(text)-300:])
	}
	if n := strings.Count(text, "hop=1"); n != 1 {
		t.Errorf("another kind of line was held back: %d lines for hop 1", n)
	}
	if n := strings.Count(text, "level=DEBUG"); n != 4000 {
		t.Errorf("%d debug lines, want all 4000", n)
	}
}
