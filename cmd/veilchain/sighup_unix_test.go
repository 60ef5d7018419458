//go:build unix

package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/proxy"
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
	stop := serveOnSIGHUP(slog.New(slog.NewTextHandler(lines, nil)))
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
