package chain

import (
	"context"
	"io"
	"net"
	"testing"
)

// BenchmarkRelay measures bulk throughput through one Relay between two
// loopback TCP connections (b.SetBytes: MB/s is the relay's rate).
func BenchmarkRelay(b *testing.B) { benchRelay(context.Background(), b) }

// BenchmarkRelayCounted is BenchmarkRelay with live byte counts
// (WithCounts), as the front ends relay when they keep statistics.
func BenchmarkRelayCounted(b *testing.B) {
	var counts Counts
	benchRelay(WithCounts(context.Background(), &counts), b)
}

func benchRelay(ctx context.Context, b *testing.B) {
	const chunk = 1 << 20
	src, a := benchPair(b)
	c, sink := benchPair(b)
	go Relay(ctx, a, c)
	done := make(chan int64)
	go func() {
		n, _ := io.Copy(io.Discard, sink)
		done <- n
	}()
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := src.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	src.(*net.TCPConn).CloseWrite()
	if n := <-done; n != int64(b.N)*chunk {
		b.Fatalf("sink got %d bytes, want %d", n, int64(b.N)*chunk)
	}
}

func benchPair(b *testing.B) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	x, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	y, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { x.Close(); y.Close() })
	return x, y
}
