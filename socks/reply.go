package socks

import (
	"context"
	"errors"
	"net"
	"syscall"

	"github.com/veilchain/veilchain/chain"
)

// replyCode maps a dial error to the SOCKS5 reply the client gets. It is
// the only place that does so.
//
//	0x02 not allowed:        policy, exit range guard, hop auth rejected, a loop into ourselves
//	0x03 network unreachable
//	0x04 host unreachable:   also timeouts and names the exit cannot resolve
//	0x05 connection refused
//	0x01 general failure:    anything else (bad addresses, hop protocol errors)
//
// A hop's own reply code is passed on unchanged: when the exit says the
// destination refused, the client hears exactly that.
func replyCode(err error) byte {
	var reply *chain.ReplyError
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case err == nil:
		return 0x00
	case errors.As(err, &reply):
		if reply.Code == 0 || reply.Code > 0x08 {
			return 0x01
		}
		return reply.Code
	case errors.Is(err, chain.ErrForbidden), errors.Is(err, chain.ErrHopAuth), errors.Is(err, chain.ErrBlocked),
		errors.Is(err, chain.ErrLoop):
		return 0x02
	case errors.Is(err, syscall.ECONNREFUSED):
		return 0x05
	case errors.Is(err, syscall.ENETUNREACH):
		return 0x03
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &dnsErr), errors.As(err, &netErr) && netErr.Timeout():
		return 0x04
	}
	return 0x01
}
