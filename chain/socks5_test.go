package chain

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

// script is one scripted exchange of a fake SOCKS5 server: what it must
// read, then what it writes.
type script struct {
	read  []byte
	write []byte
}

// scriptedServer checks that the client sends exactly each read step and
// answers with each write step, then echoes whatever follows.
func scriptedServer(t *testing.T, steps []script, got chan<- error) string {
	return fakeServer(t, func(c net.Conn) {
		for i, s := range steps {
			buf := make([]byte, len(s.read))
			if _, err := io.ReadFull(c, buf); err != nil {
				got <- err
				return
			}
			if !bytes.Equal(buf, s.read) {
				got <- errors.New("step " + string(rune('0'+i)) + ": unexpected bytes " + string(buf))
				return
			}
			c.Write(s.write)
		}
		got <- nil
		io.Copy(c, c)
	})
}

func TestSOCKS5Connect(t *testing.T) {
	greetNoAuth := script{[]byte{5, 1, 0}, []byte{5, 0}}
	okReply := []byte{5, 0, 0, 1, 10, 0, 0, 1, 0x1f, 0x90}
	tests := []struct {
		name    string
		hop     SOCKS5
		addr    string
		steps   []script
		wantErr error
		code    byte
	}{
		{
			name:  "name travels as a name",
			addr:  "dest.example:443",
			steps: []script{greetNoAuth, {append([]byte{5, 1, 0, 3, 12}, "dest.example\x01\xbb"...), okReply}},
		},
		{
			name:  "IPv4 literal",
			addr:  "192.0.2.7:80",
			steps: []script{greetNoAuth, {[]byte{5, 1, 0, 1, 192, 0, 2, 7, 0, 80}, okReply}},
		},
		{
			name: "IPv6 literal",
			addr: "[2001:db8::1]:80",
			steps: []script{greetNoAuth, {
				[]byte{5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80},
				[]byte{5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1}}},
		},
		{
			name: "user/pass auth, name in the reply",
			hop:  SOCKS5{User: "alice", Password: "pw"},
			addr: "h:1",
			steps: []script{
				{[]byte{5, 1, 2}, []byte{5, 2}},
				{[]byte("\x01\x05alice\x02pw"), []byte{1, 0}},
				{[]byte{5, 1, 0, 3, 1, 'h', 0, 1}, []byte("\x05\x00\x00\x03\x04bind\x00\x01")},
			},
		},
		{
			name: "pipelined, with auth",
			hop:  SOCKS5{User: "alice", Password: "pw", Pipeline: true},
			addr: "h:1",
			steps: []script{
				{[]byte{5, 1, 2}, []byte{5, 2}},
				{[]byte("\x01\x05alice\x02pw"), []byte{1, 0}},
				{[]byte{5, 1, 0, 3, 1, 'h', 0, 1}, okReply},
			},
		},
		{
			name:    "pipelined, auth refused",
			hop:     SOCKS5{User: "alice", Password: "bad", Pipeline: true},
			addr:    "h:1",
			steps:   []script{{[]byte{5, 1, 2}, []byte{5, 2}}, {[]byte("\x01\x05alice\x03bad"), []byte{1, 1}}},
			wantErr: ErrHopAuth,
		},
		{
			name:    "auth refused",
			hop:     SOCKS5{User: "alice", Password: "bad"},
			addr:    "h:1",
			steps:   []script{{[]byte{5, 1, 2}, []byte{5, 2}}, {[]byte("\x01\x05alice\x03bad"), []byte{1, 1}}},
			wantErr: ErrHopAuth,
		},
		{
			name:    "no acceptable method",
			addr:    "h:1",
			steps:   []script{{[]byte{5, 1, 0}, []byte{5, 0xFF}}},
			wantErr: ErrHopAuth,
		},
		{
			name:    "hop picks a method we did not offer",
			addr:    "h:1",
			steps:   []script{{[]byte{5, 1, 0}, []byte{5, 2}}},
			wantErr: ErrProtocol,
		},
		{
			name:    "not a SOCKS5 server",
			addr:    "h:1",
			steps:   []script{{[]byte{5, 1, 0}, []byte("HTTP/1.1 400 Bad Request\r\n")}},
			wantErr: ErrProtocol,
		},
		{
			name:  "connection refused beyond the hop",
			addr:  "h:1",
			steps: []script{greetNoAuth, {[]byte{5, 1, 0, 3, 1, 'h', 0, 1}, []byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0}}},
			code:  5,
		},
		{
			name:  "not allowed by the hop",
			addr:  "h:1",
			steps: []script{greetNoAuth, {[]byte{5, 1, 0, 3, 1, 'h', 0, 1}, []byte{5, 2, 0, 1, 0, 0, 0, 0, 0, 0}}},
			code:  2,
		},
		{
			name:    "bad reply address type",
			addr:    "h:1",
			steps:   []script{greetNoAuth, {[]byte{5, 1, 0, 3, 1, 'h', 0, 1}, []byte{5, 0, 0, 9, 0, 0}}},
			wantErr: ErrProtocol,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, got, out, err := connectScripted(t, tt.steps, func(addr string) Hop {
				hop := tt.hop
				hop.Address = addr
				return &hop
			}, tt.addr)
			if !wantOutcome(t, err, tt.code, tt.wantErr) {
				return
			}
			if e := <-got; e != nil {
				t.Fatalf("server: %v", e)
			}
			if out != conn {
				t.Fatalf("Connect returned %T, want the conn it was given (so splice still works)", out)
			}
			// The stream after the reply is intact: nothing was read ahead.
			out.Write([]byte("ping"))
			buf := make([]byte, 4)
			if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("echo after handshake = %q, %v", buf, err)
			}
		})
	}
}

func TestAppendSOCKS5AddrRejects(t *testing.T) {
	long := make([]byte, 256)
	for i := range long {
		long[i] = 'a'
	}
	for _, addr := range []string{"nohostport", ":80", "[fe80::1%eth0]:80", "h:99999", string(long) + ":80"} {
		if _, err := appendSOCKS5Addr(nil, addr); !errors.Is(err, ErrBadAddress) {
			t.Errorf("appendSOCKS5Addr(%q) err = %v, want ErrBadAddress", addr, err)
		}
	}
	// A 255-byte name is the longest SOCKS5 can carry, and is allowed.
	if _, err := appendSOCKS5Addr(nil, string(long[:255])+":80"); err != nil {
		t.Errorf("255-byte name: %v", err)
	}
}

func TestReplyTextNamesEveryCode(t *testing.T) {
	for c := byte(0); c <= 8; c++ {
		if ReplyText(c) == "unknown reply" {
			t.Errorf("code %d has no text", c)
		}
	}
	if !errors.Is(&HopError{Err: net.ErrClosed}, net.ErrClosed) {
		t.Error("HopError does not unwrap")
	}
}
