package chain

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSOCKS4Connect(t *testing.T) {
	ok := []byte{0, 0x5A, 0, 0, 0, 0, 0, 0}
	tests := []struct {
		name    string
		hop     SOCKS4
		addr    string
		steps   []script
		wantErr error
		code    byte
	}{
		{"4a sends the name", SOCKS4{A: true, UserID: "u"}, "host.example:80",
			[]script{{append([]byte{4, 1, 0, 80, 0, 0, 0, 1, 'u', 0}, "host.example\x00"...), ok}}, nil, 0},
		{"4 sends an IPv4 address", SOCKS4{}, "192.0.2.1:443",
			[]script{{[]byte{4, 1, 1, 187, 192, 0, 2, 1, 0}, ok}}, nil, 0},
		{"rejected", SOCKS4{A: true}, "h:1",
			[]script{{[]byte{4, 1, 0, 1, 0, 0, 0, 1, 0, 'h', 0}, []byte{0, 0x5B, 0, 0, 0, 0, 0, 0}}}, nil, 1},
		{"identd failure", SOCKS4{}, "192.0.2.1:1",
			[]script{{[]byte{4, 1, 0, 1, 192, 0, 2, 1, 0}, []byte{0, 0x5D, 0, 0, 0, 0, 0, 0}}}, ErrHopAuth, 0},
		{"not SOCKS4", SOCKS4{}, "192.0.2.1:1",
			[]script{{[]byte{4, 1, 0, 1, 192, 0, 2, 1, 0}, []byte("HTTP/1.0")}}, ErrProtocol, 0},
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
			if e := <-got; e != nil || out != conn {
				t.Fatalf("server: %v; conn returned %T", e, out)
			}
		})
	}
	// Names and IPv6 never go out over plain SOCKS4, and nothing is
	// resolved; 0.0.0.x would read as "a name follows" to a SOCKS4a server.
	for _, tt := range []struct {
		addr string
		a    bool
	}{{"host.example:80", false}, {"[2001:db8::beef]:80", true}, {"0.0.0.1:80", true}} {
		addr := tt.addr
		_, err := (&SOCKS4{Address: "unused", A: tt.a}).Connect(context.Background(), nil, addr)
		if !errors.Is(err, ErrBadAddress) || strings.Contains(err.Error(), "beef") {
			t.Errorf("socks4 to %s: err = %v, want ErrBadAddress without the address", addr, err)
		}
	}
}

// connectServer answers CONNECT requests with status, then sends early
// bytes and echoes; it reports the request it got.
func connectServer(t *testing.T, ln net.Listener, status string, early string, got chan<- *http.Request) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				got <- req
				io.WriteString(c, "HTTP/1.1 "+status+"\r\nX-Proxy: test\r\n\r\n"+early)
				if strings.HasPrefix(status, "200") {
					io.Copy(c, br)
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
}

func TestHTTPConnect(t *testing.T) {
	tests := []struct {
		status  string
		wantErr error
		code    byte
	}{
		{"200 Connection established", nil, 0},
		{"407 Proxy Authentication Required", ErrHopAuth, 0},
		{"403 Forbidden", nil, 2},
		{"503 Service Unavailable", nil, 4},
		{"504 Gateway Timeout", nil, 6},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			got := make(chan *http.Request, 1)
			connectServer(t, ln, tt.status, "SSH-2.0-server\r\n", got)
			hop := &HTTPConnect{Address: ln.Addr().String(), User: "alice", Password: "pw"}
			conn := dial(t, hop.Address)
			out, err := hop.Connect(context.Background(), conn, "dest.example:22")
			req := <-got
			if req.Method != "CONNECT" || req.RequestURI != "dest.example:22" {
				t.Fatalf("proxy got %s %s", req.Method, req.RequestURI)
			}
			if u, p, ok := parseBasic(req.Header.Get("Proxy-Authorization")); !ok || u != "alice" || p != "pw" {
				t.Fatalf("proxy got Proxy-Authorization %q", req.Header.Get("Proxy-Authorization"))
			}
			if !wantOutcome(t, err, tt.code, tt.wantErr) {
				return
			}
			// The server spoke first, right after its 200: not a byte lost.
			br := bufio.NewReader(out)
			if line, _ := br.ReadString('\n'); line != "SSH-2.0-server\r\n" {
				t.Fatalf("first tunnel bytes %q", line)
			}
			out.Write([]byte("ping\n"))
			if line, _ := br.ReadString('\n'); line != "ping\n" {
				t.Fatalf("echo %q", line)
			}
		})
	}
}

func parseBasic(h string) (string, string, bool) {
	r := &http.Request{Header: http.Header{"Authorization": {h}}}
	return r.BasicAuth()
}

func TestHTTPSConnectVerifiesTheProxy(t *testing.T) {
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	certs := ts.TLS.Certificates
	ts.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: certs})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *http.Request, 10)
	connectServer(t, ln, "200 OK", "", got)
	roots := x509.NewCertPool()
	leaf, _ := x509.ParseCertificate(certs[0].Certificate[0])
	roots.AddCert(leaf)

	for _, tt := range []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"trusted CA, right name", &tls.Config{RootCAs: roots, ServerName: "example.com"}, true},
		{"system roots", &tls.Config{ServerName: "example.com"}, false},
		{"wrong name", &tls.Config{RootCAs: roots, ServerName: "other.test"}, false},
		{"insecure", &tls.Config{InsecureSkipVerify: true}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hop := &HTTPConnect{Address: ln.Addr().String(), TLS: tt.cfg}
			out, err := hop.Connect(context.Background(), dial(t, hop.Address), "dest.example:443")
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err == nil {
				if _, isTLS := out.(*tls.Conn); !isTLS {
					t.Fatalf("tunnel is %T, want it inside TLS", out)
				}
			}
		})
	}
}

func TestHTTPConnectInterimAndOversize(t *testing.T) {
	for _, tt := range []struct {
		name   string
		answer string
		ok     bool
	}{
		{"100 before 200", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", true},
		{"endless head", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 100<<10) + "\r\n\r\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, func(c net.Conn) {
				http.ReadRequest(bufio.NewReader(c))
				io.WriteString(c, tt.answer)
				io.Copy(c, c)
			})
			out, err := (&HTTPConnect{Address: addr}).Connect(context.Background(), dial(t, addr), "d.example:1")
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			_ = out
		})
	}
}
