//go:build !windows

package chain

import "syscall"

// connectionLost are the errors of a connection its peer reset or
// dropped.
var connectionLost = []error{syscall.ECONNRESET, syscall.EPIPE, syscall.ECONNABORTED}
