package chain

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/veilchain/veilchain/internal/testnet"
)

// okReply is a SOCKS5 method reply followed by a CONNECT success.
var okReply = []byte{5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0}

// strictFirstHop plays two SOCKS5 hops behind one listener and insists on
// being sent want whole before it answers anything: a client that waits
// for a reply before sending the rest never gets one. It then answers
// with replies and echoes what follows.
func strictFirstHop(t *testing.T, want, replies []byte) string {
	return fakeServer(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
			t.Errorf("hop read %q (%v) before replying, want %q", got, err, want)
			return
		}
		c.Write(replies)
		io.Copy(c, c)
	})
}

func twoHopHandshakes(hop2, dest string) []byte {
	h1, _ := (&SOCKS5{}).handshakeBytes(context.Background(), hop2)
	h2, _ := (&SOCKS5{User: "u", Password: "p"}).handshakeBytes(context.Background(), dest)
	return append(h1, h2...)
}

func pipelinedPair(addr string) []Hop {
	return []Hop{&SOCKS5{Address: addr, Pipeline: true},
		&SOCKS5{Address: "hop2.example:1080", User: "u", Password: "p", Pipeline: true, Timeout: time.Second}}
}

func TestPipelinedRunSendsAllHandshakesAtOnce(t *testing.T) {
	const dest = "dest.example:80"
	// hop 1's replies, then hop 2's: method, auth, connect.
	replies := append(append([]byte{}, okReply...), 5, 2, 1, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0)
	addr := strictFirstHop(t, twoHopHandshakes("hop2.example:1080", dest), replies)
	dialAndEcho(t, &Chain{Hops: pipelinedPair(addr), HandshakeTimeout: 2 * time.Second}, dest)
}

// dialAndEcho dials dest through c, checks the chain handed back the raw
// TCP conn (so the relay can splice), and echoes through it.
func dialAndEcho(t *testing.T, c *Chain, dest string) {
	t.Helper()
	conn, err := c.DialContext(context.Background(), "tcp", dest)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, ok := conn.(*net.TCPConn); !ok {
		t.Errorf("dial returned %T, want the *net.TCPConn itself", conn)
	}
	echoHello(t, conn)
}

func TestOptimisticDialSendsDataBehindHandshakes(t *testing.T) {
	const dest = "dest.example:80"
	replies := append(append([]byte{}, okReply...), 5, 2, 1, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0)
	want := append(twoHopHandshakes("hop2.example:1080", dest), "hello"...)
	addr := strictFirstHop(t, want, append(replies, "hello"...)) // the echo of "hello"
	c := &Chain{Hops: pipelinedPair(addr)}
	conn, err := c.DialContext(Optimistic(context.Background()), "tcp", dest)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v; want the replies consumed and %q", got, err, "hello")
	}
	if err := Confirm(conn); err != nil {
		t.Fatal(err)
	}
}

func TestOptimisticRefusalSurfacesOnRead(t *testing.T) {
	tests := []struct {
		name    string
		replies []byte
		index   int
		check   func(error) bool
	}{
		{"exit refuses the destination", append(append([]byte{}, okReply...), 5, 2, 1, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0), 1,
			func(err error) bool { re, ok := errors.AsType[*ReplyError](err); return ok && re.Code == 5 }},
		{"hop 1 cannot reach hop 2", []byte{5, 0, 5, 4, 0, 1, 0, 0, 0, 0, 0, 0}, 0,
			func(err error) bool { re, ok := errors.AsType[*ReplyError](err); return ok && re.Code == 4 }},
		{"exit refuses the user", append(append([]byte{}, okReply...), 5, 2, 1, 1), 1,
			func(err error) bool { return errors.Is(err, ErrHopAuth) }},
		{"exit goes silent", okReply, 1,
			func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := strictFirstHop(t, twoHopHandshakes("hop2.example:1080", "dest.example:80"), tt.replies)
			health := &Health{}
			hops := pipelinedPair(addr)
			c := &Chain{Hops: hops, Health: health}
			conn, err := c.DialContext(Optimistic(context.Background()), "tcp", "dest.example:80")
			if err != nil {
				t.Fatalf("optimistic dial failed early: %v", err)
			}
			defer conn.Close()
			_, err = conn.Read(make([]byte, 1))
			var he *HopError
			if !errors.As(err, &he) || he.Index != tt.index || !tt.check(err) {
				t.Fatalf("read error = %v, want hop %d's refusal", err, tt.index+1)
			}
			if cerr := Confirm(conn); cerr != err {
				t.Errorf("Confirm = %v, want the same error as the read", cerr)
			}
		})
	}
}

// A run stops at a hop that is not pipelined; either order works, and an
// optimistic dial whose exit is not pipelined completes before returning.
func TestMixedRuns(t *testing.T) {
	echo := testnet.Echo(t)
	for _, pipe := range [][2]bool{{true, false}, {false, true}, {true, true}, {false, false}} {
		c := &Chain{Hops: []Hop{&SOCKS5{Address: socksHop(t, nil), Pipeline: pipe[0]}, &SOCKS5{Address: socksHop(t, nil), Pipeline: pipe[1]}}}
		conn, err := c.DialContext(Optimistic(context.Background()), "tcp", echo)
		if err != nil {
			t.Fatalf("pipeline %v: %v", pipe, err)
		}
		if _, pending := conn.(*pendingConn); pending != pipe[1] {
			t.Errorf("pipeline %v: returned %T", pipe, conn)
		}
		echoHello(t, conn)
		conn.Close()
	}
}

// Relay checks a pending conn's replies before relaying from it, and
// ends both sides when they refuse.
func TestRelayConfirmsPendingConn(t *testing.T) {
	replies := append(append([]byte{}, okReply...), 5, 2, 1, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0)
	addr := strictFirstHop(t, twoHopHandshakes("hop2.example:1080", "dest.example:80"), replies)
	c := &Chain{Hops: pipelinedPair(addr)}
	up, err := c.DialContext(Optimistic(context.Background()), "tcp", "dest.example:80")
	if err != nil {
		t.Fatal(err)
	}
	client, front := net.Pipe()
	defer client.Close()
	done := make(chan error, 1)
	go func() {
		_, _, err := Relay(context.Background(), front, up)
		done <- err
	}()
	select {
	case err := <-done:
		if re, ok := errors.AsType[*ReplyError](err); !ok || re.Code != 2 {
			t.Fatalf("relay ended with %v, want the exit's refusal", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("relay did not end on a refused chain")
	}
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Error("client side still open after the chain was refused")
	}
}

func echoHello(t *testing.T, conn net.Conn) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	conn.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo = %q, %v", buf, err)
	}
}

// Closing a conn whose replies are still awaited is our doing: the read
// ends as a cancellation and no hop is counted dead for it.
func TestClosingPendingConnBlamesNoHop(t *testing.T) {
	silent := fakeServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	health := &Health{}
	hops := pipelinedPair(silent)
	c := &Chain{Hops: hops, Health: health}
	conn, err := c.DialContext(Optimistic(context.Background()), "tcp", "dest.example:80")
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 1))
		read <- err
	}()
	time.Sleep(100 * time.Millisecond) // the read is waiting for hop 1's replies
	conn.Close()
	select {
	case err := <-read:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("read error = %v, want a cancellation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read did not end when the conn was closed")
	}
	for i, h := range hops {
		if !health.Alive(h) {
			t.Errorf("hop %d counted dead for a close of ours", i+1)
		}
	}
}

// The caller's deadlines hold on a pending conn: reading its replies
// under the hops' timeouts does not wipe them.
func TestPendingConnKeepsCallersDeadline(t *testing.T) {
	const dest = "dest.example:80"
	replies := append(append([]byte{}, okReply...), 5, 2, 1, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0)
	addr := strictFirstHop(t, twoHopHandshakes("hop2.example:1080", dest), replies) // then echoes, and nothing else
	c := &Chain{Hops: pipelinedPair(addr)}
	conn, err := c.DialContext(Optimistic(context.Background()), "tcp", dest)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(200 * time.Millisecond))
	read := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 1)) // the replies, then nothing: the deadline must end it
		read <- err
	}()
	select {
	case err := <-read:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read error = %v, want the caller's deadline", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the caller's deadline was lost while the replies were read")
	}
}

func TestLateHopError(t *testing.T) {
	refused := &HopError{Index: 1, Addr: "h:1", Err: &ReplyError{Code: 5}}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{refused, true},
		{errors.Join(refused, io.EOF), true},
		{&HopError{Index: 0, Addr: "h:1", Err: context.Canceled}, false}, // we closed it: not the chain's failure
		{io.EOF, false},
	} {
		if _, got := LateHopError(tt.err); got != tt.want {
			t.Errorf("LateHopError(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// writeFailConn answers reads from a script and fails every write after
// the first (the handshakes): a chain that refused and closed.
type writeFailConn struct {
	scriptConn
	writes int
}

func (c *writeFailConn) Write(b []byte) (int, error) {
	if c.writes++; c.writes > 1 {
		return 0, syscall.ECONNRESET
	}
	return len(b), nil
}

// A write that fails on a pending conn returns the chain's refusal, not
// the reset it caused: a caller that writes before it reads (an HTTP
// transport) must still hear that the exit refused.
func TestOptimisticRefusalSurfacesOnWrite(t *testing.T) {
	refusal := append(append([]byte{}, okReply...), 5, 2, 1, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0)
	conn := &writeFailConn{scriptConn: scriptConn{r: bytes.NewReader(refusal)}}
	c := &Chain{Hops: pipelinedPair("hop1.example:1080"), Forward: DialerFunc(func(context.Context, string, string) (net.Conn, error) {
		return conn, nil
	})}
	pc, err := c.DialContext(Optimistic(context.Background()), "tcp", "dest.example:80")
	if err != nil {
		t.Fatalf("optimistic dial failed early: %v", err)
	}
	_, err = pc.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	if re, ok := errors.AsType[*ReplyError](err); !ok || re.Code != 2 {
		t.Fatalf("write error = %v, want the exit's refusal 0x02", err)
	}
}
