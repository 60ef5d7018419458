package chain

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestHeadEnd(t *testing.T) {
	tests := []struct {
		head, next string
		want       int
	}{
		{"", "HTTP/1.1 200 OK\r\n\r\nrest", 19},
		{"", "HTTP/1.1 200 OK\r\n", -1},
		{"HTTP/1.1 200 OK\r\n", "\r\nrest", 2},
		{"HTTP/1.1 200 OK\r\n\r", "\nrest", 1},
		{"HTTP/1.1 200 OK\r", "\n\r\n", 3},
		{"x", "", -1},
		{"", "HTTP/1.0 200 OK\nX: y\n\nrest", 22}, // bare LF, as net/http takes it
		{"HTTP/1.0 200 OK\n", "\nrest", 1},
		{"HTTP/1.0 200 OK\r\nX: y\n", "\r\nrest", 2},
		{"", "HTTP/1.1 200 OK\r\nX: a\n\r\n", 24},
	}
	for _, tt := range tests {
		if got := headEnd([]byte(tt.head), []byte(tt.next)); got != tt.want {
			t.Errorf("headEnd(%q, %q) = %d, want %d", tt.head, tt.next, got, tt.want)
		}
	}
}

// A pipelined CONNECT answer is read head by head and not a byte further,
// from a socket (peeking) or from any other conn (a byte at a time).
func TestHTTPConnectReadsRepliesExactly(t *testing.T) {
	const after = "\x05\x00next hop's replies"
	tests := []struct {
		name    string
		answer  string
		wantErr func(error) bool
	}{
		{"200", "HTTP/1.1 200 Connection established\r\n\r\n", nil},
		{"1xx first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-A: b\r\n\r\n", nil},
		{"bare LF", "HTTP/1.0 200 OK\nX-A: b\n\n", nil},
		{"407", "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n", func(err error) bool { return errors.Is(err, ErrHopAuth) }},
		{"502", "HTTP/1.1 502 Bad Gateway\r\n\r\n", func(err error) bool {
			re, ok := errors.AsType[*ReplyError](err)
			return ok && re.Code == 0x04
		}},
		{"endless head", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: 0123456789\r\n", 5000), func(err error) bool { return errors.Is(err, ErrProtocol) }},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", func(err error) bool { return errors.Is(err, ErrProtocol) }},
	}
	h := &HTTPConnect{Address: "h:1", Pipeline: true}
	for _, tt := range tests {
		for _, socket := range []bool{true, false} {
			name := tt.name + map[bool]string{true: ", socket", false: ", pipe"}[socket]
			t.Run(name, func(t *testing.T) {
				var conn, far net.Conn
				if socket {
					conn, far = pair(t)
				} else {
					conn, far = net.Pipe()
					defer conn.Close()
					defer far.Close()
				}
				go far.Write([]byte(tt.answer + after))
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				err := h.readReplies(conn)
				if tt.wantErr != nil {
					if !tt.wantErr(err) {
						t.Fatalf("err = %v", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				rest := make([]byte, len(after))
				if _, err := io.ReadFull(conn, rest); err != nil || string(rest) != after {
					t.Fatalf("after the answer: %q, %v; want %q left unread", rest, err, after)
				}
			})
		}
	}
}

// A pipelined run may hold an HTTP hop: its CONNECT and the SOCKS5 exit's
// handshake go in one write, to a hop that answers nothing until it has
// both.
func TestPipelinedRunThroughHTTPHop(t *testing.T) {
	h1 := &HTTPConnect{Address: "", User: "u", Password: "p", Pipeline: true}
	exit := &SOCKS5{Address: "exit.example:1080", Pipeline: true}
	c1 := h1.request("exit.example:1080")
	if !strings.Contains(c1, "\r\nConnection: close\r\n") {
		t.Errorf("pipelined CONNECT %q does not ask the proxy to close after a refusal", c1)
	}
	c2, _ := exit.handshakeBytes(context.Background(), "dest.example:80")
	answer := "HTTP/1.1 200 Connection established\r\n\r\n" + string(okReply)
	h1.Address = strictFirstHop(t, append([]byte(c1), c2...), []byte(answer))
	dialAndEcho(t, &Chain{Hops: []Hop{h1, exit}}, "dest.example:80")
}

// FuzzHTTPConnectReply feeds arbitrary answers to a pipelined CONNECT: no
// panic, and a success consumes whole heads only, ending in an empty line.
func FuzzHTTPConnectReply(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\nrest"))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nA: b\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 407 x\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r"))
	f.Fuzz(func(t *testing.T, answer []byte) {
		conn := &scriptConn{r: bytes.NewReader(answer)}
		if err := (&HTTPConnect{Pipeline: true}).readReplies(conn); err != nil {
			return
		}
		used := answer[:len(answer)-conn.r.Len()]
		if !bytes.HasSuffix(used, []byte("\n\n")) && !bytes.HasSuffix(used, []byte("\n\r\n")) {
			t.Fatalf("accepted %q, reading %q, which does not end a head", answer, used)
		}
	})
}

// A hop that does not answer in time times out as a timeout, not as a
// protocol error, in both ways of reading the answer.
func TestHTTPConnectSilentHopTimesOut(t *testing.T) {
	for _, pipeline := range []bool{true, false} {
		conn, _ := pair(t)
		conn.SetDeadline(time.Now().Add(50 * time.Millisecond))
		h := &HTTPConnect{Address: "h:1", Pipeline: pipeline}
		_, err := h.Connect(context.Background(), conn, "dest.example:80")
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("pipeline %v: err = %v, want a deadline error", pipeline, err)
		}
	}
}
