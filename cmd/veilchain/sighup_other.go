//go:build !unix

package main

import "log/slog"

// serveOnSIGHUP does nothing where there is no SIGHUP.
func serveOnSIGHUP(*slog.Logger) (stop func()) { return func() {} }
