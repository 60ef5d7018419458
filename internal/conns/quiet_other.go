//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package conns

import "net"

// Quiet says true: Windows drives its sockets with overlapped I/O, with
// no non-blocking peek (and other systems are not tested here), so a conn
// closed by its peer shows only when used.
func Quiet(c net.Conn) bool { return true }

// quietWorks: Quiet only says true here.
const quietWorks = false
