package main

import (
	"strings"
	"testing"
	"time"

	"github.com/veilchain/veilchain/internal/stats"
)

// TestWriteStatus: the diagram names each position (a pool's members in
// braces) with health and latency, the exit last; the table has a row
// per live connection.
func TestWriteStatus(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	st := &stats.Status{Version: 1, PID: 4242, Since: now.Add(-3*time.Hour - 12*time.Minute),
		Listeners: []stats.ListenerStatus{{Name: "desktop", Totals: stats.Totals{Open: 2, Total: 318, Failed: 3, BytesUp: 4 << 20, BytesDown: 912 << 20}}},
		Chains: []stats.ChainStatus{{Name: "two-hops", Mode: "strict",
			Totals: stats.Totals{Open: 2, Total: 318, Failed: 3, BytesUp: 4 << 20, BytesDown: 912 << 20,
				LastError: "hop 2 (exit.example.net:9002): handshake timed out after 10s", ErrorAt: now.Add(-7 * time.Minute)},
			Hops: []stats.HopStatus{
				{Position: 1, Members: []stats.MemberStatus{{Addr: "hop.example.org:9001", Health: "up", LatencyMS: 23.4}}},
				{Position: 2, Members: []stats.MemberStatus{{Addr: "exit.example.net:9002", Health: "up", LatencyMS: 61.2},
					{Addr: "exit2.example.net:9002", Health: "down", Fails: 3}}},
			},
			Exit: &stats.ExitStatus{Addr: "198.51.100.4", Error: "echo answered 502 Bad Gateway", At: now.Add(-40 * time.Second)}}},
		Connections: []stats.ConnStatus{
			{ID: 311, Listener: "desktop", Chain: "two-hops", Hops: []string{"hop.example.org:9001", "exit.example.net:9002"},
				Dest: "example.com:443", BytesUp: 2100, BytesDown: 48 << 10, AgeS: 95},
			{ID: 318, Listener: "desktop", User: "alice", Chain: "two-hops", Hops: []string{"hop.example.org:9001", "exit.example.net:9002"},
				Dest: "git.example.org:22", BytesUp: 14 << 10, BytesDown: 3 << 20, AgeS: 4},
		}}
	var b strings.Builder
	writeStatus(&b, st, now)
	got := b.String()
	t.Log("\n" + got)
	for _, want := range []string{
		"veilchain (pid 4242, up 3h12m0s)",
		"chain two-hops (strict): 2 open, 318 in all, 3 failed, 4.0 MiB up, 912.0 MiB down",
		"  you -> hop.example.org:9001 (up, 23.4 ms) -> exit {exit.example.net:9002 (up, 61.2 ms) | exit2.example.net:9002 (down)} -> destination",
		"  last error (7m0s ago): hop 2 (exit.example.net:9002): handshake timed out after 10s",
		"  exit address: 198.51.100.4 (asked 40s ago); the last ask failed: echo answered 502 Bad Gateway",
		"ID   LISTENER  USER   CHAIN     HOPS",
		"318  desktop   alice  two-hops  hop.example.org:9001 -> exit.example.net:9002  git.example.org:22  14.0 KiB  3.0 MiB   4s",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q", want)
		}
	}
}
