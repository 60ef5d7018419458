//go:build !unix

package main

import "os"

// forwardedSignals: on Windows, Ctrl-C reaches every process of the
// console, the program included, and cannot be sent to one process;
// exec only stays alive through it, for the program's connections.
var forwardedSignals = []os.Signal{os.Interrupt}

func deliveredToProgram(os.Signal) bool { return true }
