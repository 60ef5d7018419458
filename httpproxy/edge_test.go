package httpproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/internal/testnet"
)

// scriptedOrigin accepts one connection and runs fn on it; stop closes
// when the test ends.
func scriptedOrigin(t *testing.T, fn func(c net.Conn, br *bufio.Reader, stop <-chan struct{})) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fn(c, bufio.NewReader(c), stop)
	}()
	t.Cleanup(func() { close(stop); ln.Close(); <-done })
	return ln.Addr().String()
}

func readHead(br *bufio.Reader) string {
	var sb strings.Builder
	for {
		l, err := br.ReadString('\n')
		sb.WriteString(l)
		if err != nil || l == "\r\n" {
			return sb.String()
		}
	}
}

// TestPipelinedResponsesStayInSync: a chunked POST with a trailer, a HEAD
// whose response announces a length but has no body, a 304 and a 204,
// pipelined on one connection, each answered in order and in frame.
func TestPipelinedResponsesStayInSync(t *testing.T) {
	gotTrailer := make(chan string, 1)
	o := scriptedOrigin(t, func(c net.Conn, br *bufio.Reader, stop <-chan struct{}) {
		readHead(br)
		body := ""
		for !strings.HasSuffix(body, "0\r\n\r\n") {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			body += l
		}
		gotTrailer <- body
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		readHead(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
		readHead(br)
		io.WriteString(c, "HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n")
		readHead(br)
		io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
		readHead(br)
	})
	proxy := testnet.Serve(t, &Server{Dialer: &fakeChain{target: o}})
	c, br := rawConn(t, proxy)
	io.WriteString(c, "POST http://d.example/ HTTP/1.1\r\nHost: d.example\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-Forwarded-For: 9.9.9.9\r\n\r\n"+
		"HEAD http://d.example/h HTTP/1.1\r\nHost: d.example\r\n\r\n"+
		"GET http://d.example/c HTTP/1.1\r\nHost: d.example\r\n\r\n"+
		"GET http://d.example/n HTTP/1.1\r\nHost: d.example\r\nConnection: close\r\n\r\n")
	for _, want := range []struct {
		method string
		code   int
		body   string
	}{{"POST", 200, "ok"}, {"HEAD", 200, ""}, {"GET", 304, ""}, {"GET", 204, ""}} {
		resp, err := http.ReadResponse(br, &http.Request{Method: want.method})
		if err != nil {
			t.Fatalf("reading the %s response: %v", want.method, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want.code || string(body) != want.body {
			t.Fatalf("%s: got %d %q, want %d %q", want.method, resp.StatusCode, body, want.code, want.body)
		}
	}
	if tr := <-gotTrailer; strings.Contains(tr, "9.9.9.9") {
		t.Errorf("the client's trailer reached the destination: %q", tr)
	}
}

// TestNoContinueAfterFinalResponse: a destination that answers an
// Expect: 100-continue request at once must not make the proxy send
// "100 Continue" into (or after) the final response.
func TestNoContinueAfterFinalResponse(t *testing.T) {
	o := scriptedOrigin(t, func(c net.Conn, br *bufio.Reader, stop <-chan struct{}) {
		readHead(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		io.Copy(io.Discard, br)
	})
	proxy := testnet.Serve(t, &Server{Dialer: &fakeChain{target: o}})
	c, _ := rawConn(t, proxy)
	io.WriteString(c, "PUT http://d.example/ HTTP/1.1\r\nHost: d.example\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	all, _ := io.ReadAll(c)
	// A 100 before the final response is allowed (the Transport may have
	// started on the body); one after it would corrupt the stream.
	got := strings.TrimPrefix(string(all), "HTTP/1.1 100 Continue\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 200 OK") || strings.Contains(got, "100 Continue") || !strings.HasSuffix(got, "\r\n\r\nok") {
		t.Fatalf("client got %q: want the final response, then a close", all)
	}
}

// TestEarlyResponseWhileUploading: the destination answers before it has
// read the body, then reads it. The client gets that answer; then either
// the connection closes (the Transport was still sending the body, so
// where the next request starts was not known yet) or the next request is
// served in order. Run with -race: two goroutines touch the body.
func TestEarlyResponseWhileUploading(t *testing.T) {
	o := scriptedOrigin(t, func(c net.Conn, br *bufio.Reader, stop <-chan struct{}) {
		readHead(br)
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\n\r\nno")
		time.Sleep(20 * time.Millisecond)
		io.CopyN(io.Discard, br, 200000)
		if strings.Contains(readHead(br), "/next") {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
		}
	})
	proxy := testnet.Serve(t, &Server{Dialer: &fakeChain{target: o}})
	c, br := rawConn(t, proxy)
	go io.WriteString(c, "POST http://d.example/ HTTP/1.1\r\nHost: d.example\r\nContent-Length: 200000\r\n\r\n"+strings.Repeat("x", 200000)+
		"GET http://d.example/next HTTP/1.1\r\nHost: d.example\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 413 {
		t.Fatalf("response %v, %v", resp, err)
	}
	io.ReadAll(resp.Body)
	if resp2, err := http.ReadResponse(br, nil); err == nil {
		body, _ := io.ReadAll(resp2.Body)
		if resp2.StatusCode != 200 || string(body) != "next" {
			t.Fatalf("second response %d %q, want 200 \"next\" or a close", resp2.StatusCode, body)
		}
	}
}

// TestStalledDestinationIsCut: a destination that stops sending its body,
// or never reads an upload, holds nothing past the idle timeout.
func TestStalledDestinationIsCut(t *testing.T) {
	for _, tt := range []struct {
		name   string
		origin func(c net.Conn, br *bufio.Reader, stop <-chan struct{})
		req    string
	}{
		{"response body stalls", func(c net.Conn, br *bufio.Reader, stop <-chan struct{}) {
			readHead(br)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.Copy(io.Discard, br)
		}, "GET http://d.example/ HTTP/1.1\r\nHost: d.example\r\n\r\n"},
		{"upload never read", func(c net.Conn, br *bufio.Reader, stop <-chan struct{}) {
			readHead(br)
			<-stop
		}, "POST http://d.example/ HTTP/1.1\r\nHost: d.example\r\nContent-Length: 50000000\r\n\r\n"},
		{"no answer", func(c net.Conn, br *bufio.Reader, stop <-chan struct{}) {
			readHead(br)
			<-stop
		}, "GET http://d.example/ HTTP/1.1\r\nHost: d.example\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := scriptedOrigin(t, tt.origin)
			srv := &Server{Dialer: &fakeChain{target: o}, IdleTimeout: 200 * time.Millisecond}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan struct{})
			go func() { srv.Serve(ln); close(served) }()
			c, _ := rawConn(t, ln.Addr().String())
			io.WriteString(c, tt.req)
			go io.Copy(c, zeros{}) // keep uploading, if the request has a body
			time.Sleep(time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("connection still served 1s after the destination stalled (idle timeout 200ms): %v", err)
			}
			<-served
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestBadBodyNeverReachesTheDestination: a request body that is broken
// where the proxy can see it before forwarding (a bad chunk header, a
// chunk without its CRLF, a body cut short) gets 400 from the proxy, and
// the destination gets nothing: not a head followed by a close, which it
// might act on. A good small body arrives whole.
func TestBadBodyNeverReachesTheDestination(t *testing.T) {
	const head = "POST http://d.example/ HTTP/1.1\r\nHost: d.example\r\n"
	for _, tt := range []struct {
		name string
		req  string
		code int
		got  string // what the destination must have received; "" for nothing
	}{
		{"bad chunk size", head + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400, ""},
		{"chunk longer than its size", head + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", 400, ""},
		{"second chunk bad", head + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nq\r\nx\r\n0\r\n\r\n", 400, ""},
		{"chunked cut short", head + "Transfer-Encoding: chunked\r\n\r\n5\r\nab", 400, ""},
		{"length cut short", head + "Content-Length: 10\r\n\r\nabc", 400, ""},
		{"good chunked", head + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n", 200, "abcde"},
		{"good length", head + "Content-Length: 3\r\n\r\nabc", 200, "abc"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			received := make(chan string, 1)
			o := testnet.Accept(t, func(c net.Conn) {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					all, _ := io.ReadAll(br)
					received <- fmt.Sprintf("a bad request (%v) %q", err, all)
					return
				}
				body, err := io.ReadAll(req.Body)
				if err != nil {
					received <- fmt.Sprintf("a head and a broken body %q (%v)", body, err)
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
				received <- string(body)
			})
			fc := &fakeChain{target: o}
			proxy := testnet.Serve(t, &Server{Dialer: fc, IdleTimeout: 2 * time.Second})
			c, br := rawConn(t, proxy)
			io.WriteString(c, tt.req)
			c.(*net.TCPConn).CloseWrite()
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading the response: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.code)
			}
			if tt.got == "" {
				if n := fc.dials.Load(); n != 0 {
					t.Errorf("the chain was dialled %d times for a request the proxy refused", n)
					select {
					case got := <-received:
						t.Errorf("the destination received %s", got)
					case <-time.After(time.Second):
					}
				}
				return
			}
			if got := <-received; got != tt.got {
				t.Errorf("destination received body %q, want %q", got, tt.got)
			}
		})
	}
}

// An exit that refuses a destination by its range (a serve's CONNECT)
// says in its log which range and how to allow it; the destination only
// at debug.
func TestExitRefusalIsLoggedWithTheRange(t *testing.T) {
	for _, tt := range []struct {
		dest string
		want []string
	}{
		{"10.1.2.3", []string{"range=10.0.0.0/8", "kind=private", "--allow 10.0.0.0/8", "--allow-private"}},
		{"[2002:c0a8:101::1]", []string{"range=192.168.0.0/16", "kind=private", "via=6to4"}},
	} {
		var logs testnet.LogBuffer
		log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		proxy := testnet.Serve(t, &Server{Dialer: &chain.Exit{}, Logger: log})
		c, br := rawConn(t, proxy)
		io.WriteString(c, "CONNECT "+tt.dest+":443 HTTP/1.1\r\nHost: "+tt.dest+":443\r\n\r\n")
		resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		if err != nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: response %v, %v; want 403", tt.dest, resp, err)
		}
		io.ReadAll(resp.Body)
		var info, all []string
		for _, line := range strings.Split(logs.String(), "\n") {
			if !strings.Contains(line, "level=DEBUG") {
				info = append(info, line)
			}
			all = append(all, line)
		}
		for _, w := range tt.want {
			if s := strings.Join(info, "\n"); !strings.Contains(s, "refused by the exit's range guard") || !strings.Contains(s, w) {
				t.Errorf("%s: the info log does not say %q:\n%s", tt.dest, w, s)
			}
		}
		if s := strings.Join(info, "\n"); strings.Contains(s, tt.dest) {
			t.Errorf("%s: the destination is in the info log:\n%s", tt.dest, s)
		}
		if s := strings.Join(all, "\n"); !strings.Contains(s, tt.dest) {
			t.Errorf("%s: the destination is not in the debug log:\n%s", tt.dest, s)
		}
	}
}
