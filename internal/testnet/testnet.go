// Package testnet has the loopback servers that tests across packages
// share: an echo server, a silent one, and a way to run a front end
// until the test ends.
package testnet

import (
	"context"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Accept runs handle for each connection to a new loopback listener until
// the test ends, then closes the listener and waits for the handlers.
// handle must return when its conn is closed or its peer leaves.
func Accept(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// Echo is a loopback echo server.
func Echo(t testing.TB) string {
	return Accept(t, func(c net.Conn) { io.Copy(c, c) })
}

// Silent accepts and reads but never answers: a peer that hangs.
func Silent(t testing.TB) string {
	return Accept(t, func(c net.Conn) { io.Copy(io.Discard, c) })
}

// Server is a front end: socks.Server, httpproxy.Server.
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// Serve runs srv on a loopback port until the test ends.
func Serve(t testing.TB, srv Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

// SkipOrFail skips a test that lacks a program or privilege, with the
// reason, or fails it when VEILCHAIN_E2E_REQUIRED=1 (as CI sets).
func SkipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("VEILCHAIN_E2E_REQUIRED") == "1" {
		t.Fatalf("required by VEILCHAIN_E2E_REQUIRED=1: "+format, args...)
	}
	t.Skipf(format+" (set VEILCHAIN_E2E_REQUIRED=1 to make this a failure)", args...)
}

// LogBuffer is a log sink that a test reads while servers write to it.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Take returns what was written since the last Take.
func (l *LogBuffer) Take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.b.String()
	l.b.Reset()
	return out
}

// RawExchange sends flight to addr over plain TCP and returns what comes
// back until the server closes, or until wait has passed, marked then
// with "<still open>".
func RawExchange(t testing.TB, addr, flight string, wait time.Duration) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	io.WriteString(c, flight)
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return string(b) + "<still open>"
	}
	return string(b)
}
