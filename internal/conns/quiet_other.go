//go:build !unix

package conns

import "net"

// Quiet says true: Windows drives its sockets with overlapped I/O, with
// no non-blocking peek, so a conn closed by its peer shows only when used.
func Quiet(c net.Conn) bool { return true }

// quietWorks: Quiet only says true here.
const quietWorks = false
