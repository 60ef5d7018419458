package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/veilchain/veilchain/configs"
)

// pollChanges asks for a reload (on requests) each time fingerprint's
// answer, taken at every tick, differs from the one before. It is how a
// platform without SIGHUP (Windows: see reload_windows.go) notices a
// changed config; it builds and is tested everywhere.
func pollChanges(fingerprint func() string, ticks <-chan time.Time) (requests <-chan struct{}, stop func()) {
	req := make(chan struct{}, 1)
	done := make(chan struct{})
	last := fingerprint()
	go func() {
		for {
			select {
			case <-ticks:
				if now := fingerprint(); now != last {
					last = now
					select {
					case req <- struct{}{}:
					default: // one is pending already
					}
				}
			case <-done:
				return
			}
		}
	}()
	return req, func() { close(done) }
}

// configFingerprint is what a reload would read, in one string: the
// config as loaded (file and flags), or the error loading it, and the
// size and modification time of each block list it names. A config saved
// halfway fails to load: its error is a fingerprint too, so the reload
// that follows is refused and logged once, and the finished file, a
// change again, is loaded.
func configFingerprint(load func() (*configs.Config, error)) string {
	cfg, err := load()
	if err != nil {
		return "load: " + err.Error()
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		return "marshal: " + err.Error()
	}
	var b strings.Builder
	b.Write(data)
	for _, path := range cfg.BlockLists {
		if fi, err := os.Stat(path); err != nil {
			fmt.Fprintf(&b, "\n%s: %v", path, err)
		} else {
			fmt.Fprintf(&b, "\n%s: %d bytes, %d", path, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return b.String()
}
