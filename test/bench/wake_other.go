//go:build !linux

package main

import "errors"

// perfCount: perf, and the counts -wake compares, are Linux's.
func perfCount(comm string, f func() error) (map[string]float64, error) {
	return nil, errors.New("-wake counts with perf, on Linux only")
}
