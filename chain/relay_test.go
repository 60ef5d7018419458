package chain

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// pair returns the two ends of a loopback TCP connection.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// relayed starts Relay between two connections and returns the outer
// ends: client talks to the relay's a side, server to its b side.
func relayed(t *testing.T, ctx context.Context) (client, server net.Conn, done <-chan error) {
	client, a := pair(t)
	b, server := pair(t)
	ch := make(chan error, 1)
	go func() {
		_, _, err := Relay(ctx, a, b)
		a.Close()
		b.Close()
		ch <- err
	}()
	return client, server, ch
}

func TestRelayHalfClose(t *testing.T) {
	client, server, done := relayed(t, context.Background())
	req := make([]byte, 1<<20)
	rand.Read(req)
	go func() {
		client.Write(req)
		client.(*net.TCPConn).CloseWrite()
	}()
	// The server reads to EOF, and only then answers: the answer must
	// still reach the client after the client's half-close.
	got, err := io.ReadAll(server)
	if err != nil || !bytes.Equal(got, req) {
		t.Fatalf("server got %d bytes (%v), want %d", len(got), err, len(req))
	}
	server.Write([]byte("answer after EOF"))
	server.(*net.TCPConn).CloseWrite()
	resp, err := io.ReadAll(client)
	if err != nil || string(resp) != "answer after EOF" {
		t.Fatalf("client got %q, %v", resp, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Relay: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Relay did not return after both directions ended")
	}
}

func TestRelayCancelClosesBoth(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	client, server, done := relayed(t, ctx)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Relay err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Relay ignored cancellation")
	}
	for _, c := range []net.Conn{client, server} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("outer end still open after cancel")
		}
	}
}

func TestRelayResetEndsOtherDirection(t *testing.T) {
	client, server, done := relayed(t, context.Background())
	// An abortive close (RST) on one side is an error, not EOF: the relay
	// must end both directions instead of waiting for the other to finish.
	server.(*net.TCPConn).SetLinger(0)
	server.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Relay kept running after a reset")
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(client)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("client side never closed")
	}
}

func TestRelayIdleTimeout(t *testing.T) {
	client, a := pair(t)
	b, server := pair(t)
	done := make(chan error, 1)
	begin := time.Now()
	go func() {
		_, _, err := RelayIdle(context.Background(), a, b, 300*time.Millisecond)
		a.Close()
		b.Close()
		done <- err
	}()
	// Traffic in one direction only keeps the whole relay alive.
	for range 6 {
		client.Write([]byte("x"))
		io.ReadFull(server, make([]byte, 1))
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("relay ended while busy: %v", err)
	default:
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrIdle) {
			t.Fatalf("err = %v, want ErrIdle", err)
		}
		if d := time.Since(begin); d > 3*time.Second {
			t.Fatalf("idle relay ended after %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("idle relay never ended")
	}
}
