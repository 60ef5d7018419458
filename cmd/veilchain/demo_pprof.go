package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
)

// demoProfiles serves the demo process's profiles on the loopback address
// in VEILCHAIN_PPROF, if set: /heap, /goroutine, /allocs and the rest of
// runtime/pprof's, ?debug=N as `go tool pprof` and net/http/pprof take
// it, and ?gc=1 to collect
// (twice) first. GODEBUG=memprofilerate=1 makes the heap profile
// record every allocation (slow, and it costs memory of its own). Only the demo does this (the bench's
// one-process harness runs a demo), on a mux of its own: nothing is added
// to the default mux, and run and serve have no such thing.
func demoProfiles() (stop func(), err error) {
	addr := os.Getenv("VEILCHAIN_PPROF")
	if addr == "" {
		return func() {}, nil
	}
	if !isLoopback(addr) {
		return nil, fmt.Errorf("VEILCHAIN_PPROF=%s: profiles are served on loopback only", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("VEILCHAIN_PPROF: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/{name}", func(w http.ResponseWriter, r *http.Request) {
		p := pprof.Lookup(r.PathValue("name"))
		if p == nil {
			http.NotFound(w, r)
			return
		}
		if r.FormValue("gc") == "1" {
			// Two: the profile is published a cycle late (see
			// runtime.MemProfile), and this is a snapshot of what is live.
			runtime.GC()
			runtime.GC()
		}
		debug, _ := strconv.Atoi(r.FormValue("debug"))
		p.WriteTo(w, debug)
	})
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	return func() { hs.Close() }, nil
}
