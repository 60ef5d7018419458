//go:build !portable

package chain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// shortIdle makes directions go idle (and park) after 50 ms.
func shortIdle(t *testing.T) {
	old := spliceIdle
	spliceIdle = 50 * time.Millisecond
	t.Cleanup(func() { spliceIdle = old })
}

type relayResult struct {
	aToB, bToA int64
	err        error
}

// started runs StartRelay between two loopback pairs and returns the outer
// ends and the relay's result.
func started(t *testing.T, ctx context.Context) (client, server net.Conn, done <-chan relayResult) {
	client, a := pair(t)
	b, server := pair(t)
	ch := make(chan relayResult, 1)
	StartRelay(ctx, a, b, 0, func(aToB, bToA int64, err error) {
		a.Close()
		b.Close()
		ch <- relayResult{aToB, bToA, err}
	})
	return client, server, ch
}

func exchange(t *testing.T, client, server net.Conn, msg string) {
	t.Helper()
	for _, dir := range [][2]net.Conn{{client, server}, {server, client}} {
		dir[0].SetDeadline(time.Now().Add(5 * time.Second))
		dir[1].SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := dir[0].Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(dir[1], got); err != nil || string(got) != msg {
			t.Fatalf("relayed %q, %v; want %q", got, err, msg)
		}
	}
}

// waitParked waits until n directions are parked.
func waitParked(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		parking.mu.Lock()
		got := len(parking.waiting)
		parking.mu.Unlock()
		if got == n {
			return
		}
	}
	parking.mu.Lock()
	defer parking.mu.Unlock()
	t.Fatalf("%d directions parked, want %d", len(parking.waiting), n)
}

// Many idle relays hold no goroutine, and each wakes with its own bytes.
func TestIdleRelaysParkWithoutGoroutines(t *testing.T) {
	shortIdle(t)
	const relays = 50
	base := runtime.NumGoroutine()
	var clients, servers []net.Conn
	var dones []<-chan relayResult
	for range relays {
		c, s, d := started(t, context.Background())
		clients, servers, dones = append(clients, c), append(servers, s), append(dones, d)
	}
	for i := range relays {
		exchange(t, clients[i], servers[i], fmt.Sprintf("first %d", i))
	}
	waitParked(t, 2*relays)
	if n := runtime.NumGoroutine() - base; n > 1 {
		t.Fatalf("%d idle relays run %d goroutines, want only the parking lot's watcher", relays, n)
	}
	// Wake them in reverse, each with bytes of its own: a token mix-up
	// would deliver to the wrong relay or to none.
	for i := relays - 1; i >= 0; i-- {
		exchange(t, clients[i], servers[i], fmt.Sprintf("second %d", i))
	}
	waitParked(t, 2*relays)
	// The peers hang up: every parked direction wakes and ends.
	for i := range relays {
		clients[i].Close()
		servers[i].Close()
	}
	for i, d := range dones {
		select {
		case r := <-d:
			if want := int64(len(fmt.Sprintf("first %d", i)) + len(fmt.Sprintf("second %d", i))); r.aToB != want || r.bToA != want {
				t.Errorf("relay %d carried %d and %d bytes, want %d each", i, r.aToB, r.bToA, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("relay %d did not end after its peers closed", i)
		}
	}
	waitParked(t, 0)
}

// A parked relay ends on cancel (the watcher is the only way to reach
// it), on the peer's close, and across a half-close.
func TestParkedRelayEnds(t *testing.T) {
	shortIdle(t)
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		client, server, done := started(t, ctx)
		exchange(t, client, server, "x")
		waitParked(t, 2)
		cancel()
		select {
		case r := <-done:
			if !errors.Is(r.err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", r.err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("parked relay did not end on cancel")
		}
		waitParked(t, 0)
	})
	t.Run("close", func(t *testing.T) {
		client, server, done := started(t, context.Background())
		exchange(t, client, server, "x")
		waitParked(t, 2)
		client.Close()
		if _, err := server.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("server read %v, want EOF passed on", err)
		}
		server.Close()
		select {
		case r := <-done:
			if r.err != nil || r.aToB != 1 || r.bToA != 1 {
				t.Fatalf("relay ended with %+v", r)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("parked relay did not end when both sides closed")
		}
	})
	t.Run("half-close", func(t *testing.T) {
		client, server, done := started(t, context.Background())
		exchange(t, client, server, "x")
		waitParked(t, 2)
		client.(*net.TCPConn).CloseWrite()
		if _, err := server.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("server read %v, want EOF", err)
		}
		waitParked(t, 1) // server to client is still open, and idle
		server.Write([]byte("late answer"))
		server.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(client)
		if err != nil || string(got) != "late answer" {
			t.Fatalf("client got %q, %v", got, err)
		}
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatal(r.err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("relay did not end")
		}
	})
}

// With an idle timeout, parked directions still end the relay on time,
// and traffic one way keeps the whole relay alive.
func TestParkedRelayIdleTimeout(t *testing.T) {
	shortIdle(t)
	client, a := pair(t)
	b, server := pair(t)
	done := make(chan relayResult, 1)
	begin := time.Now()
	StartRelay(context.Background(), a, b, time.Second, func(aToB, bToA int64, err error) {
		a.Close()
		b.Close()
		done <- relayResult{aToB, bToA, err}
	})
	for range 15 { // 1.5 s of traffic one way, with pauses longer than a splice window
		exchangeOneWay(t, client, server)
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case r := <-done:
		t.Fatalf("relay ended while busy: %v", r.err)
	default:
	}
	waitParked(t, 2)
	select {
	case r := <-done:
		if !errors.Is(r.err, ErrIdle) {
			t.Fatalf("err = %v, want ErrIdle", r.err)
		}
		if d := time.Since(begin); d > 4*time.Second {
			t.Fatalf("idle relay ended after %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("parked idle relay never timed out")
	}
	waitParked(t, 0)
}

func exchangeOneWay(t *testing.T, from, to net.Conn) {
	t.Helper()
	from.Write([]byte("x"))
	to.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(to, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
}

// Bytes count as activity when they arrive, not when the splice window
// that carried them closes. With a 1 s idle timeout (500 ms windows):
// bytes at 20 and 400 ms share a window that closes at 520; bytes at
// 1300 open one that closes at 1800. Counted at window close, the quiet
// direction's check at 1520 would see nothing since 520 and end a relay
// that carried bytes 220 ms before.
func TestIdleTimeoutCountsBytesOnArrival(t *testing.T) {
	const idle = time.Second
	client, a := pair(t)
	b, server := pair(t)
	done := make(chan relayResult, 1)
	StartRelay(context.Background(), a, b, idle, func(aToB, bToA int64, err error) {
		a.Close()
		b.Close()
		done <- relayResult{aToB, bToA, err}
	})
	begin := time.Now()
	var last time.Time
	for _, at := range []time.Duration{20, 400, 1300} {
		time.Sleep(time.Until(begin.Add(at * time.Millisecond)))
		exchangeOneWay(t, client, server)
		last = time.Now()
	}
	time.Sleep(time.Until(last.Add(700 * time.Millisecond)))
	select {
	case r := <-done:
		t.Fatalf("relay ended %v after its last bytes, with an idle timeout of %v: %v", time.Since(last), idle, r.err)
	default:
	}
	client.Close()
	server.Close()
	<-done
}

// A direction that has not carried a byte parks too, once a whole window
// passes (the sweep ends its window like any other), and its first bytes
// still come through.
func TestSilentRelayParks(t *testing.T) {
	shortIdle(t)
	client, server, done := started(t, context.Background())
	waitParked(t, 2)
	exchange(t, client, server, "first")
	client.Close()
	server.Close()
	select {
	case r := <-done:
		if r.aToB != 5 || r.bToA != 5 {
			t.Fatalf("relay carried %d and %d bytes, want 5 each", r.aToB, r.bToA)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("relay did not end")
	}
	waitParked(t, 0)
}
