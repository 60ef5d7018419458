package chain

import (
	"net"
	"testing"

	"go.uber.org/goleak"

	"github.com/veilchain/veilchain/internal/testnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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
