package chain

import "syscall"

// connectionLost are the errors of a connection its peer reset or
// dropped (Windows reports them as its own WSA codes).
var connectionLost = []error{syscall.WSAECONNRESET, syscall.WSAECONNABORTED, syscall.ECONNRESET, syscall.EPIPE}
