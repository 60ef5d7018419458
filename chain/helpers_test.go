package chain

import (
	"context"
	"errors"
	"net"
	"testing"

	"go.uber.org/goleak"

	"github.com/veilchain/veilchain/internal/testnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, sshOpenRace) }

// sshOpenRace ignores a goroutine golang.org/x/crypto/ssh can leave
// behind: a channel opened in the instant its connection ends (after
// the mux dropped its channels, before it closed the transport) waits
// for an answer forever. The SSH tests break connections on purpose and
// open streams right after; the race is upstream's, and costs one parked
// goroutine per occurrence.
var sshOpenRace = goleak.IgnoreTopFunction("golang.org/x/crypto/ssh.(*mux).openChannel")

// fakeServer runs handle for each connection to a loopback listener.
func fakeServer(t *testing.T, handle func(net.Conn)) string { return testnet.Accept(t, handle) }

// dial opens a plain TCP conn to addr, closed at the end of the test.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// wantOutcome checks a handshake's error against what a table case
// expects: a hop's reply code, a sentinel error, or success. It reports
// whether the handshake succeeded (and the case goes on).
func wantOutcome(t *testing.T, err error, code byte, wantErr error) bool {
	t.Helper()
	var re *ReplyError
	switch {
	case code != 0:
		if !errors.As(err, &re) || re.Code != code {
			t.Fatalf("err = %v, want reply code %d", err, code)
		}
		return false
	case wantErr != nil:
		if !errors.Is(err, wantErr) {
			t.Fatalf("err = %v, want %v", err, wantErr)
		}
		return false
	case err != nil:
		t.Fatal(err)
	}
	return true
}

// connectScripted runs hop.Connect to target over a connection to a
// scripted server (see scriptedServer); hop gets the server's address.
// It returns the conn it dialled, a channel with the server's verdict on
// the exchange, and what Connect returned.
func connectScripted(t *testing.T, steps []script, hop func(addr string) Hop, target string) (conn net.Conn, server <-chan error, out net.Conn, err error) {
	t.Helper()
	got := make(chan error, 1)
	addr := scriptedServer(t, steps, got)
	conn = dial(t, addr)
	out, err = hop(addr).Connect(context.Background(), conn, target)
	return conn, got, out, err
}
