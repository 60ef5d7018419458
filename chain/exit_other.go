//go:build !linux || portable

package chain

import "syscall"

// leavePortToConnect does nothing here: IP_BIND_ADDRESS_NO_PORT is
// Linux's. Without it, an exit with a LocalIP binds a port of its own for
// each connection, so its connections at once, TIME_WAIT ones included,
// are bounded by the ephemeral range (some 26,000 on Linux, measured; see
// exit_linux.go) rather than per destination. Every connection is still
// guarded and made from LocalIP; only that ceiling differs.
// (Windows' SO_REUSE_UNICASTPORT would lift it there: not done, untested.)
func leavePortToConnect(syscall.RawConn) {}
