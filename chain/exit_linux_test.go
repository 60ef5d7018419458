//go:build !portable

package chain_test

import (
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veilchain/veilchain/internal/testnet"
)

// An exit with a source address leaves the port's choice to connect(2):
// bound with port 0 first, it would need a port no other socket holds,
// TIME_WAIT ones included, and after some 26,000 short connections a
// minute it could not connect at all (see leavePortToConnect).
func TestExitLocalIPLeavesThePortToConnect(t *testing.T) {
	dest := testnet.Echo(t)
	for _, allowPrivate := range []bool{true, false} {
		c := dialFromLocalIP(t, dest, allowPrivate)
		rc, _ := c.(*net.TCPConn).SyscallConn()
		var v int
		var gerr error
		rc.Control(func(fd uintptr) {
			v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT)
		})
		if gerr != nil || v != 1 {
			t.Errorf("AllowPrivate %v: IP_BIND_ADDRESS_NO_PORT = %d, %v; want 1", allowPrivate, v, gerr)
		}
	}
}
