package test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/internal/testnet"
	"github.com/veilchain/veilchain/socks"
)

// BenchmarkSetup: one connection through a front end and two hops, all
// in this process, and a 1-byte echo; sequential (CPU per connection).
func BenchmarkSetup(b *testing.B) {
	echo := testnet.Echo(b)
	hop2 := testnet.Serve(b, &socks.Server{Dialer: &chain.Exit{AllowPrivate: true}})
	hop1 := testnet.Serve(b, &socks.Server{Dialer: &chain.Exit{AllowPrivate: true}})
	front := testnet.Serve(b, &socks.Server{Dialer: &chain.Chain{Hops: []chain.Hop{
		&chain.SOCKS5{Address: hop1}, &chain.SOCKS5{Address: hop2}}}})
	client := &chain.Chain{Hops: []chain.Hop{&chain.SOCKS5{Address: front}}}
	b.ReportAllocs()
	for b.Loop() {
		c, err := client.DialContext(context.Background(), "tcp", echo)
		if err != nil {
			b.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte{1})
		io.ReadFull(c, make([]byte, 1))
		c.Close()
	}
}
