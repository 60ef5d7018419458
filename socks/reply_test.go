package socks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/veilchain/veilchain/chain"
)

func TestReplyCode(t *testing.T) {
	hop := func(err error) error { return &chain.HopError{Index: 1, Addr: "h:1", Err: err} }
	opErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: errno}}
	}
	tests := []struct {
		name string
		err  error
		want byte
	}{
		{"hop passes refused on", hop(&chain.ReplyError{Code: 5}), 0x05},
		{"hop passes not-allowed on", hop(&chain.ReplyError{Code: 2}), 0x02},
		{"hop passes TTL expired on", hop(&chain.ReplyError{Code: 6}), 0x06},
		{"hop sends a code out of range", hop(&chain.ReplyError{Code: 0x42}), 0x01},
		{"first hop refuses TCP", hop(opErr(syscall.ECONNREFUSED)), 0x05},
		{"first hop network unreachable", hop(opErr(syscall.ENETUNREACH)), 0x03},
		{"first hop host unreachable", hop(opErr(syscall.EHOSTUNREACH)), 0x04},
		{"hop handshake timed out", hop(fmt.Errorf("handshake timed out: %w", context.DeadlineExceeded)), 0x04},
		{"i/o timeout", hop(&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}), 0x04},
		{"hop rejects our auth", hop(fmt.Errorf("%w: user refused", chain.ErrHopAuth)), 0x02},
		{"exit guard", fmt.Errorf("dial: %w", chain.ErrForbidden), 0x02},
		{"policy", fmt.Errorf("%w (rule 1)", chain.ErrBlocked), 0x02},
		{"exit cannot resolve", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}}, 0x04},
		{"exit refused", opErr(syscall.ECONNREFUSED), 0x05},
		{"chain without hops", chain.ErrNoHops, 0x01},
		{"hop protocol error", hop(chain.ErrProtocol), 0x01},
		{"bad destination", chain.ErrBadAddress, 0x01},
		{"caller cancelled", hop(context.Canceled), 0x01},
		{"unknown", errors.New("boom"), 0x01},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replyCode(tt.err); got != tt.want {
				t.Errorf("replyCode(%v) = 0x%02x, want 0x%02x", tt.err, got, tt.want)
			}
		})
	}
}
