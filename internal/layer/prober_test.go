package layer

import (
	"bufio"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/veilchain/veilchain/internal/testnet"
)

// startServePort wires a gate and its decoy the way `serve` does, with
// nothing behind the proxy listeners but a recorder that closes.
func startServePort(t *testing.T, site *url.URL) (addr string, id *Identity) {
	t.Helper()
	id = testIdentity(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &Gate{TLS: &tls.Config{Certificates: []tls.Certificate{id.Cert}}, Auth: func(_, u, p string) bool { return u == "alice" && p == "secret" }, Timeout: 10 * time.Second}
	socksLn, httpLn, decoyLn := g.Split(ln)
	decoy := Decoy(site)
	go decoy.Serve(decoyLn)
	t.Cleanup(func() { socksLn.Close(); httpLn.Close(); decoy.Close() })
	return ln.Addr().String(), id
}

// TestProberSeesAWebServer: a TLS client that does not authenticate (a
// browser, a prober's HTTP GET, random bytes, a SOCKS greeting with a
// wrong password) gets the decoy's HTTP answer, never a SOCKS byte.
func TestProberSeesAWebServer(t *testing.T) {
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "the decoy site: "+r.URL.Path)
	}))
	defer site.Close()
	siteURL, _ := url.Parse(site.URL)
	tests := []struct {
		name   string
		site   *url.URL
		flight string
		want   string // prefix of the answer
	}{
		{"GET / gets the page", nil, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK"},
		{"GET /admin gets 404", nil, "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404 Not Found"},
		{"CONNECT without auth gets 400", nil, "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"random bytes get 400", nil, "\x8f\x13\x00\xfe\x42\x99 \x01\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"a SOCKS greeting with a wrong password gets 400", nil, "\x05\x01\x02\x01\x05alice\x05guess\x05\x01\x00\x03\x01x\x00\x50\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"--decoy: the site's own answer", siteURL, "GET /blog HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := startServePort(t, tt.site)
			// A browser's TLS: verification off, since a prober has no pin.
			c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
				t.Errorf("ALPN chose %q, want http/1.1", p)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, tt.flight)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no HTTP answer: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			got := resp.Proto + " " + resp.Status
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("answer %q (%q), want %q", got, body, tt.want)
			}
			if tt.site != nil && string(body) != "the decoy site: /blog" {
				t.Fatalf("body %q, want the decoy site's", body)
			}
		})
	}
}

// TestNonTLSProberSeesAnHTTPSServer: a client that does not speak TLS at
// all gets exactly what Go's own HTTPS server gives it.
func TestNonTLSProberSeesAnHTTPSServer(t *testing.T) {
	ref := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	ref.Config.ErrorLog = log.New(io.Discard, "", 0)
	ref.StartTLS()
	defer ref.Close()
	refAddr := strings.TrimPrefix(ref.URL, "https://")
	addr, _ := startServePort(t, nil)
	for _, flight := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"\x05\x01\x00",
		"\x05\x01\x02\x01\x05alice\x06secret\x05\x01\x00\x03\x01x\x00\x50",
		"CONNECT a.example:443 HTTP/1.1\r\n\r\n",
		"\x04\x01\x00\x50\x00\x00\x00\x01\x00x\x00",
	} {
		want := testnet.RawExchange(t, refAddr, flight, time.Second)
		if got := testnet.RawExchange(t, addr, flight, time.Second); got != want {
			t.Errorf("after %q: got %q, Go's HTTPS server gives %q", flight, got, want)
		}
	}
}
