package conns

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestShutdownWaitsThenCuts(t *testing.T) {
	var g Group
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	served := make(chan error, 1)
	go func() {
		served <- g.Serve(ln, func(ctx context.Context, c net.Conn) {
			defer c.Close()
			close(started)
			<-ctx.Done() // a connection that would never end by itself
		})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := g.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if err := <-served; !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve = %v, want ErrClosed", err)
	}
	// Serving again after Shutdown is refused, and closes the listener.
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := g.Serve(ln2, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve after Shutdown = %v", err)
	}
	if _, err := ln2.Accept(); err == nil {
		t.Fatal("listener still open")
	}
}

func TestShutdownIdleReturnsAtOnce(t *testing.T) {
	var g Group
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Work held with Hold counts like a connection: Shutdown waits for its
// release, and when it gives up, Hold's context ends, which is how a held
// relay is cut.
func TestShutdownWaitsForHeld(t *testing.T) {
	var g Group
	ctx, release := g.Hold()
	released := make(chan struct{})
	go func() {
		<-ctx.Done()
		release()
		release() // a second call is harmless
		close(released)
	}()
	sctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := g.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded after waiting for the held work", err)
	}
	<-released

	var g2 Group
	_, release2 := g2.Hold()
	time.AfterFunc(50*time.Millisecond, release2)
	if err := g2.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown = %v, want nil once the held work was released", err)
	}
}

// A Group serving a Split listener runs its handler on the goroutine that
// routed the conn, counted like any: Shutdown waits for it, then cuts it.
func TestGroupServesSplitDirectly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lns := Split(ln, 1, time.Second, func(c net.Conn) (net.Conn, int) { return c, 0 }, nil)
	var g Group
	handled := make(chan struct{})
	served := make(chan error, 1)
	go func() {
		served <- g.Serve(lns[0], func(ctx context.Context, c net.Conn) {
			defer c.Close()
			close(handled)
			<-ctx.Done()
		})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-handled:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler never ran")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := g.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded after waiting for the handler", err)
	}
	if err := <-served; !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve = %v, want ErrClosed", err)
	}
}
