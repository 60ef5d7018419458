package main

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veilchain/veilchain/configs"
)

// pollChanges asks for a reload once per change, and not for a tick that
// saw none. The test drives the ticks: a tick sent has been taken, and
// the one before it handled, when the next send returns.
func TestPollChangesAsksOncePerChange(t *testing.T) {
	var state atomic.Value // the poller reads it while the test goes on
	state.Store("a")
	ticks := make(chan time.Time)
	requests, stop := pollChanges(func() string { return state.Load().(string) }, ticks)
	defer stop()
	tick := func() {
		ticks <- time.Time{}
		ticks <- time.Time{} // returns once the first is handled (the second may still run)
	}
	asked := func() bool {
		select {
		case <-requests:
			return true
		default:
			return false
		}
	}
	tick()
	if asked() {
		t.Fatal("a reload asked for with nothing changed")
	}
	state.Store("b")
	tick() // the first of its ticks sees "b", and asks before the second is taken
	if !asked() {
		t.Fatal("no reload asked for after a change")
	}
	tick()
	if asked() {
		t.Fatal("a second reload asked for the same change")
	}
}

// The fingerprint changes with the config file and with a block list's
// contents, and stays the same when nothing changed.
func TestConfigFingerprint(t *testing.T) {
	dir := t.TempDir()
	cfgPath, listPath := filepath.Join(dir, "c.yaml"), filepath.Join(dir, "block.txt")
	write := func(path, data string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(listPath, "bad.example\n")
	write(cfgPath, "block_lists: ["+listPath+"]\n")
	load := func() (*configs.Config, error) { return configs.Load(cfgPath) }
	first := configFingerprint(load)
	if again := configFingerprint(load); again != first {
		t.Fatalf("fingerprint changed with nothing changed:\n%s\n%s", first, again)
	}
	write(listPath, "bad.example\nworse.example\n")
	second := configFingerprint(load)
	if second == first {
		t.Fatal("fingerprint unchanged after the block list changed")
	}
	write(cfgPath, "block_lists: ["+listPath+"]\ntimeouts: {idle: 7s}\n")
	if third := configFingerprint(load); third == second {
		t.Fatal("fingerprint unchanged after the config changed")
	}
}
