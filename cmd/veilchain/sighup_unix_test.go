//go:build unix

package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/proxy"

	"github.com/veilchain/veilchain/policy"
)

// lineWriter hands each write (one log line) to a channel.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

// serve's SIGHUP handler logs that serve has nothing to reload.
func TestServeSIGHUPIsLoggedAsIgnored(t *testing.T) {
	lines := make(lineWriter, 4)
	stop := serveOnSIGHUP(slog.New(slog.NewTextHandler(lines, nil)), nil)
	defer stop()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-lines:
		if !strings.Contains(l, "SIGHUP ignored: serve has nothing to reload") {
			t.Fatalf("logged %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no log line after SIGHUP")
	}
}

// serve, running, survives a SIGHUP and goes on serving (without its
// handler this test's process would die).
func TestServeSurvivesSIGHUP(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	app := newApp()
	app.Writer = pw
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, []string{"veilchain", "serve", "--listen", "127.0.0.1:0", "--state-dir", t.TempDir(), "--log-level", "error"})
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n') // the hop URL: serving
	if err != nil {
		t.Fatalf("serve printed no hop URL: %v (%v)", err, <-done)
	}
	go io.Copy(io.Discard, pr)
	u, err := url.Parse(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Still serving: a plain SOCKS5 client on loopback gets an answer
	// (a refusal: the exit does not reach loopback destinations).
	d, err := proxy.SOCKS5("tcp", u.Host, nil, &net.Dialer{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Dial("tcp", "127.0.0.1:9"); err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("after SIGHUP: %v, want a refusal from serve", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// With --users-file, SIGHUP reads the users again: a user added to the
// file gets in, one removed does not, and a broken file leaves the
// running users.
func TestServeReloadsUsersFileOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "users")
	hash := func(pw string) string {
		h, _ := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		return string(h)
	}
	os.WriteFile(file, []byte("# serve's users\nalice:"+hash("a-pw")+"\n"), 0o600)
	users := &policy.Users{}
	if err := loadUsersFile(users, file); err != nil {
		t.Fatal(err)
	}
	lines := make(lineWriter, 4)
	stop := serveOnSIGHUP(slog.New(slog.NewTextHandler(lines, nil)), func() error { return loadUsersFile(users, file) })
	defer stop()
	hup := func(want string) {
		t.Helper()
		syscall.Kill(syscall.Getpid(), syscall.SIGHUP)
		select {
		case l := <-lines:
			if !strings.Contains(l, want) {
				t.Fatalf("logged %q, want %q", l, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no log line after SIGHUP")
		}
	}
	if !users.Authenticate("127.0.0.1:1", "alice", "a-pw") {
		t.Fatal("alice refused")
	}
	os.WriteFile(file, []byte("bob:"+hash("b-pw")+"\n"), 0o600)
	hup("reload: users file read again")
	if users.Authenticate("127.0.0.1:2", "alice", "a-pw") || !users.Authenticate("127.0.0.1:3", "bob", "b-pw") {
		t.Fatal("the reloaded file is not the one in use")
	}
	os.WriteFile(file, []byte("bob\n"), 0o600)
	hup("reload failed: the running users stay")
	if !users.Authenticate("127.0.0.1:4", "bob", "b-pw") {
		t.Fatal("a broken file changed the users")
	}
}
