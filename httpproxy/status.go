package httpproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"

	"github.com/veilchain/veilchain/chain"
)

// statusOf maps an error to the status the client gets. It is the only
// place that does so.
//
//	400 malformed or smuggling request (invalid header names included), bad destination address
//	403 policy refused the destination, or the exit did (its range guard, or a hop's ruleset)
//	414/431 request line / head over the limits
//	505 an HTTP version other than 1.0 and 1.1
//	508 the request came from this process's own chain (a loop)
//	502 the chain could not be built, or the destination failed
//	504 a hop or the destination did not answer in time
func statusOf(err error) int {
	var se *statusError
	var reply *chain.ReplyError
	var netErr net.Error
	switch {
	case errors.As(err, &se):
		return se.code
	case errors.Is(err, chain.ErrLoop):
		return http.StatusLoopDetected
	case errors.Is(err, errMalformed), errors.Is(err, chain.ErrBadAddress):
		return http.StatusBadRequest
	case errors.Is(err, chain.ErrForbidden), errors.Is(err, chain.ErrBlocked), errors.As(err, &reply) && reply.Code == 0x02:
		return http.StatusForbidden
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &reply) && reply.Code == 0x06,
		errors.As(err, &netErr) && netErr.Timeout():
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// errorText is the one-line reason in an error response. On a loopback
// listener it is the whole error; otherwise it never holds an address.
func errorText(err error, local bool) string {
	var se *statusError
	var hop *chain.HopError
	var reply *chain.ReplyError
	switch {
	case errors.As(err, &se):
		return se.text
	case errors.Is(err, chain.ErrBlocked), errors.Is(err, chain.ErrLoop):
		return err.Error() // "refused by policy (rule 2 \"ads\")": no address in it
	case local:
		return err.Error()
	case errors.As(err, &hop) && errors.As(err, &reply):
		return fmt.Sprintf("hop %d: %v", hop.Index+1, hop.Err) // holds no address
	case errors.As(err, &hop):
		return fmt.Sprintf("hop %d: %s", hop.Index+1, failure(hop.Err))
	}
	return failure(err)
}

// failure names a class of error without any address in it.
func failure(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, chain.ErrHopAuth):
		return "authentication rejected"
	case errors.Is(err, chain.ErrProtocol):
		return "protocol error"
	case errors.Is(err, chain.ErrBadAddress):
		return "bad destination address"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timed out"
	}
	return http.StatusText(statusOf(err))
}
