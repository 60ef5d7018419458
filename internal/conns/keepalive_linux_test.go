package conns

import (
	"net"
	"syscall"
	"testing"
)

// A client on loopback gets no keepalive (the kernel ends a loopback
// conn itself), and the conn accepted is still the raw *net.TCPConn that
// the relay splices.
func TestListenNoKeepAliveOnLoopback(t *testing.T) {
	ln, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tc, ok := s.(*net.TCPConn)
	if !ok {
		t.Fatalf("accepted a %T, want *net.TCPConn", s)
	}
	if on := keepAliveOn(t, tc); on {
		t.Fatal("keepalive on for a loopback client")
	}
	// Turned on explicitly, it is on: the check above can see it.
	tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true})
	if !keepAliveOn(t, tc) {
		t.Fatal("SO_KEEPALIVE not seen after turning it on")
	}
}

func keepAliveOn(t *testing.T, c *net.TCPConn) bool {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v != 0
}
