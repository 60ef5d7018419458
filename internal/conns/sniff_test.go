package conns

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veilchain/veilchain/internal/testnet"
)

func TestSniffRoutesByFirstByte(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	socks, http := Sniff(ln, 500*time.Millisecond, nil)
	defer socks.Close()
	defer http.Close()
	for _, tt := range []struct {
		first []byte
		want  net.Listener
	}{
		{[]byte{5, 1, 0}, socks},
		{[]byte{4, 1, 0, 80}, socks},
		{[]byte("CONNECT a:1 HTTP/1.1\r\n"), http},
		{[]byte("GET http://a/ HTTP/1.1\r\n"), http},
	} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		// Partial first read: one byte now, the rest later.
		c.Write(tt.first[:1])
		time.Sleep(10 * time.Millisecond)
		c.Write(tt.first[1:])
		got, err := acceptWithin(tt.want, 5*time.Second)
		if err != nil {
			t.Fatalf("first bytes %q: %v", tt.first, err)
		}
		// Where the relay splices, the byte is peeked at and the server
		// gets the raw conn; elsewhere it gets the byte in front of it.
		if _, ok := got.(*net.TCPConn); canPeek && !ok {
			t.Fatalf("handed a %T, want the raw *net.TCPConn", got)
		}
		buf := make([]byte, len(tt.first))
		got.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(got, buf); err != nil || string(buf) != string(tt.first) {
			t.Fatalf("server read %q, %v: the peeked byte must still be there", buf, err)
		}
		got.Close()
		c.Close()
	}
}

func TestSniffDropsSilentClients(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	socks, http := Sniff(ln, 100*time.Millisecond, nil)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent client: read err %v, want EOF (closed by the sniffer)", err)
	}
	socks.Close()
	http.Close()
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("parent listener still open after both children closed")
	}
	if _, err := socks.Accept(); err == nil {
		t.Fatal("Accept after Close succeeded")
	}
}

// acceptWithin fails instead of hanging when a conn went elsewhere.
func acceptWithin(ln net.Listener, d time.Duration) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-time.After(d):
		ln.Close() // ends the Accept above
		return nil, errors.New("nothing arrived: routed to the wrong listener?")
	}
}

// flakyListener fails its first Accept as a listener out of descriptors does.
type flakyListener struct {
	net.Listener
	failed bool
}

func (f *flakyListener) Accept() (net.Conn, error) {
	if !f.failed {
		f.failed = true
		return nil, syscall.EMFILE
	}
	return f.Listener.Accept()
}

func TestSniffSurvivesAcceptErrorsAndZeroTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs testnet.LogBuffer
	socks, http := Sniff(&flakyListener{Listener: ln}, 0, slog.New(slog.NewTextHandler(&logs, nil)))
	defer socks.Close()
	defer http.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{5, 1, 0})
	got, err := acceptWithin(socks, 5*time.Second)
	if err != nil {
		t.Fatalf("after one accept error (and with timeout 0): %v", err)
	}
	got.Close()
	// Out of descriptors is said, not silent.
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "too many open files") {
		t.Errorf("accept failure log %q: want a warning naming the error", out)
	}
}

// Quiet tells an idle conn from one whose peer closed or sent something.
func TestQuiet(t *testing.T) {
	if !quietWorks {
		t.Skip("no non-blocking peek here")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pair := func() (client, server net.Conn) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		return c, s
	}
	c, _ := pair()
	if !Quiet(c) {
		t.Error("an idle conn is not quiet")
	}
	c, s := pair()
	s.Write([]byte("x"))
	time.Sleep(50 * time.Millisecond)
	if Quiet(c) {
		t.Error("a conn with a byte queued is quiet")
	}
	c, s = pair()
	s.Close()
	time.Sleep(50 * time.Millisecond)
	if Quiet(c) {
		t.Error("a conn its peer closed is quiet")
	}
}
