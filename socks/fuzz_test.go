package socks

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/veilchain/veilchain/chain"
)

// FuzzHandshake feeds arbitrary client bytes to the server handshake
// (SOCKS4, SOCKS4a and SOCKS5, chosen by the first byte). It
// must never panic, and whatever destination it accepts must be a
// well-formed host:port that cannot make anything dial the local machine.
func FuzzHandshake(f *testing.F) {
	for _, seed := range [][]byte{
		{5, 1, 0, 5, 1, 0, 1, 192, 0, 2, 1, 0, 80},
		{5, 1, 0, 5, 1, 0, 3, 11, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 1, 187},
		{5, 1, 0, 5, 1, 0, 4, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80},
		{5, 1, 2, 1, 1, 'u', 1, 'p', 5, 1, 0, 3, 1, 'h', 0, 1},
		{5, 2, 0, 2, 5, 2, 0, 1, 1, 1, 1, 1, 0, 21},
		{5, 1, 0, 5, 1, 0, 3, 0, 0, 80},
		{4, 1, 0, 80, 1, 2, 3, 4, 0},
		{4, 1, 0, 80, 0, 0, 0, 1, 'u', 0, 'h', '.', 'e', 'x', 0},
		{4, 1, 0, 80, 0, 0, 0, 1, 0, 'a'},
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, in []byte, withAuth bool) {
		s := &Server{}
		if withAuth {
			s.Auth = Credentials{"u": "p"}
		}
		dest, _, _, err := s.handshakeAny(bufio.NewReaderSize(bytes.NewReader(in), 512), io.Discard, "192.0.2.1:1", nil)
		if err != nil {
			return
		}
		if err := chain.CheckAddr(dest); err != nil {
			t.Fatalf("accepted destination %q: %v", dest, err)
		}
	})
}
