package control

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReloadAndStatus(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veilchain", "control.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v, %v; want %v", p, fi.Mode().Perm(), err, want)
			}
		}
	}
	reloads := 0
	fail := false
	s := &Server{
		Reload: func() error {
			reloads++
			if fail {
				return errors.New("config.yaml:3: bad")
			}
			return nil
		},
		Status: func() any { return map[string]int{"version": 1} },
	}
	done := make(chan struct{})
	go func() { s.Serve(ln); close(done) }()
	defer func() { s.Shutdown(context.Background()); <-done }()

	var res Result
	if err := Call(context.Background(), path, "POST", "/v1/reload", &res); err != nil || !res.OK || reloads != 1 {
		t.Fatalf("reload: %+v, %v, %d reloads", res, err, reloads)
	}
	fail = true
	if err := Call(context.Background(), path, "POST", "/v1/reload", &res); err != nil || res.OK || res.Error != "config.yaml:3: bad" {
		t.Fatalf("failed reload: %+v, %v", res, err)
	}
	var st map[string]int
	if err := Call(context.Background(), path, "GET", "/v1/status", &st); err != nil || st["version"] != 1 {
		t.Fatalf("status: %v, %v", st, err)
	}
	if err := Call(context.Background(), path, "GET", "/v1/reload", &res); err == nil || !strings.Contains(err.Error(), "405") {
		t.Fatalf("GET /v1/reload: %v, want 405", err)
	}
	// A second run on the same socket is refused, and the first keeps it.
	if _, err := Listen(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen: %v, want ErrInUse", err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	// A socket file nobody listens on any more (a process that was killed).
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln.Close()
	if err := Call(context.Background(), path, "POST", "/v1/reload", &Result{}); err == nil || !strings.Contains(err.Error(), "no veilchain answers on "+path) {
		t.Fatalf("Call with nothing there: %v", err)
	}
}
