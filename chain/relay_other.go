//go:build !linux || portable

package chain

import "net"

// The portable relay: no splice of our own and no parking (see
// relay_linux.go for what Linux adds). Every direction is relay.go's
// copy loop, with half-close, the idle deadline and fail-closed as
// everywhere; a direction waiting for data waits on its goroutine.

// parks: nothing is ever parked here.
type parks struct{}

// tcpHalf relays a direction between two TCP conns with the copy loop
// (io.Copy, which uses whatever the platform offers between sockets).
func (r *relay) tcpHalf(dir int, dst, src *net.TCPConn) { r.copyHalf(dir, dst, src) }

// unparkAll has nothing to resume: no direction ever parks here. (A
// method of parks, which relay embeds, so that relay.closeBoth calls it.)
func (parks) unparkAll() {}
