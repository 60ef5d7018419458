//go:build !unix

package main

import "log/slog"

// serveOnSIGHUP does nothing where there is no SIGHUP.
func serveOnSIGHUP(*slog.Logger, func() error) (stop func()) { return func() {} }
