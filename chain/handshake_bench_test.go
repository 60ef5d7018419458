package chain

import (
	"bytes"
	"context"
	"testing"
)

// BenchmarkHandshake measures the client side of each hop type's
// handshake against canned replies (CPU and allocations, no network).
func BenchmarkHandshake(b *testing.B) {
	for _, bc := range []struct {
		name  string
		hop   Hop
		reply []byte
	}{
		{"socks5", &SOCKS5{Address: "h:1"}, []byte{5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"socks5-auth", &SOCKS5{Address: "h:1", User: "u", Password: "p"}, []byte{5, 2, 1, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"socks4a", &SOCKS4{Address: "h:1", A: true}, []byte{0, 0x5A, 0, 0, 0, 0, 0, 0}},
		{"socks5-pipelined", &SOCKS5{Address: "h:1", Pipeline: true}, []byte{5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"http", &HTTPConnect{Address: "h:1"}, []byte("HTTP/1.1 200 Connection established\r\n\r\n")},
		// Not a socket, so the answer is read a byte at a time: the worst case.
		{"http-pipelined", &HTTPConnect{Address: "h:1", Pipeline: true}, []byte("HTTP/1.1 200 Connection established\r\n\r\n")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			conn := &scriptConn{r: bytes.NewReader(nil)}
			for b.Loop() {
				conn.r.Reset(bc.reply)
				if _, err := bc.hop.Connect(context.Background(), conn, "dest.example:443"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
