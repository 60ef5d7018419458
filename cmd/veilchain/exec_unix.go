//go:build unix

package main

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// forwardedSignals are passed on to the program exec runs.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// deliveredToProgram reports whether s has reached the program already:
// a SIGINT or SIGQUIT typed at a terminal goes to its whole foreground
// process group, the program's (which is ours) included, and sent again
// it would arrive twice.
func deliveredToProgram(s os.Signal) bool {
	if s != syscall.SIGINT && s != syscall.SIGQUIT {
		return false
	}
	for fd := 0; fd <= 2; fd++ {
		if pg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP); err == nil {
			return pg == unix.Getpgrp()
		}
	}
	return false
}
