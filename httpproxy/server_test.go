package httpproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/internal/testnet"
	"github.com/veilchain/veilchain/policy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeChain is a Dialer that stands in for a chain: it records the
// addresses asked for and connects to one local target, or fails.
type fakeChain struct {
	target string
	err    error
	dials  atomic.Int32
	mu     sync.Mutex
	asked  []string
}

func (f *fakeChain) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	f.dials.Add(1)
	f.mu.Lock()
	f.asked = append(f.asked, addr)
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var d net.Dialer
	return d.DialContext(ctx, network, f.target)
}

// origin is a destination web server that records what it received.
type origin struct {
	addr string
	mu   sync.Mutex
	reqs []*http.Request
	sums []string
}

func newOrigin(t *testing.T) *origin {
	o := &origin{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.addr = ln.Addr().String()
	srv := &http.Server{Handler: o, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return o
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, _ := io.Copy(h, r.Body)
	o.mu.Lock()
	o.reqs = append(o.reqs, r)
	o.sums = append(o.sums, fmt.Sprintf("%d:%x", n, h.Sum(nil)))
	o.mu.Unlock()
	switch r.URL.Path {
	case "/big":
		w.Header().Set("Content-Type", "application/octet-stream")
		io.CopyN(w, bytes.NewReader(bigBody), int64(len(bigBody)))
	case "/ws":
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "not an upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw) // echo
	default:
		fmt.Fprintf(w, "ok %s", r.URL.Path)
	}
}

func (o *origin) last() (*http.Request, string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.reqs) == 0 {
		return nil, ""
	}
	return o.reqs[len(o.reqs)-1], o.sums[len(o.sums)-1]
}

var bigBody = func() []byte {
	b := make([]byte, 8<<20)
	rand.Read(b)
	return b
}()

func proxyClient(t *testing.T, proxy string) *http.Client {
	u, _ := url.Parse("http://" + proxy)
	tr := &http.Transport{Proxy: http.ProxyURL(u), DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func TestForwardStripsIdentifyingHeaders(t *testing.T) {
	o := newOrigin(t)
	fc := &fakeChain{target: o.addr}
	proxy := testnet.Serve(t, &Server{Dialer: fc})
	req, _ := http.NewRequest("GET", "http://dest.example/page?q=1", nil)
	req.Header.Set("X-Forwarded-For", "192.0.2.99")
	req.Header.Set("Via", "1.1 leaky")
	req.Header.Set("Forwarded", "for=192.0.2.99")
	req.Header.Set("X-Real-IP", "192.0.2.99")
	req.Header.Set("From", "me@example.com")
	req.Header.Set("User-Agent", "test-agent/1")
	req.Header.Set("Cookie", "session=1")
	resp, err := proxyClient(t, proxy).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok /page" {
		t.Fatalf("response %d %q", resp.StatusCode, body)
	}
	got, _ := o.last()
	want := http.Header{"User-Agent": {"test-agent/1"}, "Cookie": {"session=1"}}
	if fmt.Sprint(got.Header) != fmt.Sprint(want) {
		t.Fatalf("destination got headers %v, want exactly %v", got.Header, want)
	}
	if got.Host != "dest.example" || got.RequestURI != "/page?q=1" {
		t.Fatalf("destination got Host %q URI %q", got.Host, got.RequestURI)
	}
	if fc.asked[0] != "dest.example:80" {
		t.Fatalf("chain asked for %q, want the name dest.example:80", fc.asked)
	}
}

func TestKeepAliveReusesBothSides(t *testing.T) {
	o := newOrigin(t)
	fc := &fakeChain{target: o.addr}
	proxy := testnet.Serve(t, &Server{Dialer: fc})
	client := proxyClient(t, proxy)
	reused := 0
	for i := range 5 {
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			if info.Reused {
				reused++
			}
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", fmt.Sprintf("http://dest.example/%d", i), nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if reused != 4 {
		t.Errorf("client reused its proxy connection %d times in 5 requests, want 4", reused)
	}
	if n := fc.dials.Load(); n != 1 {
		t.Errorf("chain dialled %d times for 5 requests to one host, want 1", n)
	}
}

func TestBodiesStreamBothWays(t *testing.T) {
	o := newOrigin(t)
	proxy := testnet.Serve(t, &Server{Dialer: &fakeChain{target: o.addr}})
	client := proxyClient(t, proxy)

	// Chunked upload (unknown length) of 8 MiB.
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < len(bigBody); i += 100_000 {
			pw.Write(bigBody[i:min(i+100_000, len(bigBody))])
		}
		pw.Close()
	}()
	resp, err := client.Post("http://dest.example/upload", "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_, sum := o.last()
	if want := fmt.Sprintf("%d:%x", len(bigBody), sha256.Sum256(bigBody)); sum != want {
		t.Fatalf("destination received %s, want %s", sum, want)
	}

	// 8 MiB download.
	resp, err = client.Get("http://dest.example/big")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != int64(len(bigBody)) || !bytes.Equal(h.Sum(nil), sha256Sum(bigBody)) {
		t.Fatalf("download: %d bytes, err %v, hash match %v", n, err, bytes.Equal(h.Sum(nil), sha256Sum(bigBody)))
	}
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// rawConn opens a connection to the proxy for hand-written requests.
func rawConn(t *testing.T, proxy string) (net.Conn, *bufio.Reader) {
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func TestExpectContinue(t *testing.T) {
	o := newOrigin(t)
	proxy := testnet.Serve(t, &Server{Dialer: &fakeChain{target: o.addr}})
	c, br := rawConn(t, proxy)
	io.WriteString(c, "PUT http://dest.example/up HTTP/1.1\r\nHost: dest.example\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("first line %q, %v: want 100 Continue before the body is sent", line, err)
	}
	br.ReadString('\n') // blank line after 100
	io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("response %v, %v", resp, err)
	}
	resp.Body.Close()
	if _, sum := o.last(); !strings.HasPrefix(sum, "5:") {
		t.Fatalf("destination got body %s", sum)
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	o := newOrigin(t)
	proxy := testnet.Serve(t, &Server{Dialer: &fakeChain{target: o.addr}})
	c, br := rawConn(t, proxy)
	io.WriteString(c, "GET http://dest.example/ws HTTP/1.1\r\nHost: dest.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\nX-Forwarded-For: 192.0.2.9\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("response %v, %v", resp, err)
	}
	io.WriteString(c, "frame bytes")
	buf := make([]byte, len("frame bytes"))
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "frame bytes" {
		t.Fatalf("echo over the upgraded connection: %q, %v", buf, err)
	}
	got, _ := o.last()
	if got.Header.Get("X-Forwarded-For") != "" || got.Header.Get("Sec-Websocket-Key") != "x" {
		t.Fatalf("destination got headers %v", got.Header)
	}
}

func TestConnectTunnel(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		c, err := echo.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	fc := &fakeChain{target: echo.Addr().String()}
	proxy := testnet.Serve(t, &Server{Dialer: fc})
	c, br := rawConn(t, proxy)
	// The first tunnel bytes come in the same write as the CONNECT.
	io.WriteString(c, "CONNECT dest.example:443 HTTP/1.1\r\nHost: dest.example:443\r\n\r\nearly")
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("response %v, %v", resp, err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "early" {
		t.Fatalf("tunnel echo %q, %v", buf, err)
	}
	if fc.asked[0] != "dest.example:443" {
		t.Fatalf("chain asked for %q", fc.asked)
	}
}

func TestBadRequests(t *testing.T) {
	long := strings.Repeat("a", 70000)
	tests := []struct {
		name string
		req  string
		code int
	}{
		{"CL and TE", "POST http://d.example/ HTTP/1.1\r\nHost: d.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE and CL, other case", "POST http://d.example/ HTTP/1.1\r\nHost: d.example\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n0\r\n\r\n", 400},
		{"two different Content-Lengths", "POST http://d.example/ HTTP/1.1\r\nHost: d.example\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400},
		{"obs-fold", "GET http://d.example/ HTTP/1.1\r\nHost: d.example\r\nX-A: a\r\n  folded\r\n\r\n", 400},
		{"space in a header name", "GET http://d.example/ HTTP/1.1\r\nHost: d.example\r\nX A: b\r\n\r\n", 400},
		{"space before the colon", "POST http://d.example/ HTTP/1.1\r\nHost: d.example\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
		{"space before the colon, beside Content-Length", "POST http://d.example/ HTTP/1.1\r\nHost: d.example\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
		{"separator in a header name", "GET http://d.example/ HTTP/1.1\r\nHost: d.example\r\nX(A): b\r\n\r\n", 400},
		{"HTTP/9.9", "GET http://d.example/ HTTP/9.9\r\nHost: d.example\r\n\r\n", 505},
		{"HTTP/2.0", "GET http://d.example/ HTTP/2.0\r\nHost: d.example\r\n\r\n", 505},
		{"HTTP/1.2", "GET http://d.example/ HTTP/1.2\r\nHost: d.example\r\n\r\n", 505},
		{"CONNECT HTTP/0.9", "CONNECT d.example:443 HTTP/0.9\r\nHost: d.example:443\r\n\r\n", 505},
		{"unsupported Transfer-Encoding", "POST http://d.example/ HTTP/1.1\r\nHost: d.example\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
		{"URI too long", "GET http://d.example/" + long + " HTTP/1.1\r\nHost: d.example\r\n\r\n", 414},
		{"headers too large", "GET http://d.example/ HTTP/1.1\r\nHost: d.example\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 70) + "\r\n", 431},
		{"origin-form to the proxy", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400},
		{"https absolute-form", "GET https://d.example/ HTTP/1.1\r\nHost: d.example\r\n\r\n", 400},
		{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400},
		{"CONNECT without port", "CONNECT d.example HTTP/1.1\r\nHost: d.example\r\n\r\n", 400},
		{"CONNECT to 0.0.0.0", "CONNECT 0.0.0.0:80 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"name that is a local address", "GET http://127.1/ HTTP/1.1\r\nHost: 127.1\r\n\r\n", 400},
		{"absolute-form to the proxy itself", "GET http://PROXY/ HTTP/1.1\r\nHost: PROXY\r\n\r\n", 400},
		{"CONNECT to the proxy itself", "CONNECT PROXY HTTP/1.1\r\nHost: PROXY\r\n\r\n", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := &fakeChain{target: "127.0.0.1:1"}
			proxy := testnet.Serve(t, &Server{Dialer: fc})
			c, br := rawConn(t, proxy)
			io.WriteString(c, strings.ReplaceAll(tt.req, "PROXY", proxy))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading response: %v", err)
			}
			io.ReadAll(resp.Body)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.code)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("connection not closed after %d: %v", tt.code, err)
			}
			if n := fc.dials.Load(); n != 0 {
				t.Fatalf("the chain was dialled %d times", n)
			}
		})
	}
}

func TestChainFailureStatuses(t *testing.T) {
	hopErr := func(err error) error { return &chain.HopError{Index: 1, Addr: "198.51.100.7:9002", Err: err} }
	tests := []struct {
		name string
		err  error
		code int
		text string
	}{
		{"destination refused", hopErr(fmt.Errorf("reaching the destination: %w", &chain.ReplyError{Code: 5})), 502, "hop 2 (198.51.100.7:9002): reaching the destination: connection refused"},
		{"exit forbids", hopErr(&chain.ReplyError{Code: 2}), 403, "hop 2"},
		{"hop timed out", hopErr(fmt.Errorf("handshake timed out: %w", context.DeadlineExceeded)), 504, "hop 2"},
		{"hop auth", hopErr(fmt.Errorf("%w: user refused", chain.ErrHopAuth)), 502, "hop rejected authentication"},
		{"policy", fmt.Errorf("%w (rule 2 \"ads\")", chain.ErrBlocked), 403, `refused by policy (rule 2 "ads")`},
	}
	for _, tt := range tests {
		for _, method := range []string{"GET http://d.example/ HTTP/1.1\r\nHost: d.example\r\n\r\n", "CONNECT d.example:443 HTTP/1.1\r\nHost: d.example:443\r\n\r\n"} {
			t.Run(tt.name+" "+method[:4], func(t *testing.T) {
				proxy := testnet.Serve(t, &Server{Dialer: &fakeChain{err: tt.err}})
				c, br := rawConn(t, proxy)
				io.WriteString(c, method)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != tt.code || !strings.Contains(string(body), tt.text) {
					t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, body, tt.code, tt.text)
				}
			})
		}
	}
}

// TestErrorTextOffLoopback: on a non-loopback listener, error texts name
// the hop by position and never by address.
func TestErrorTextOffLoopback(t *testing.T) {
	for _, err := range []error{
		&chain.HopError{Index: 0, Addr: "10.1.2.3:1080", Err: &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 1080}, Err: errors.New("connect: connection refused")}},
		&chain.HopError{Index: 1, Addr: "10.1.2.4:1080", Err: fmt.Errorf("reaching the destination: %w", &chain.ReplyError{Code: 4})},
		&chain.HopError{Index: 1, Addr: "10.1.2.4:1080", Err: fmt.Errorf("read tcp 10.0.0.1:5->10.1.2.4:1080: %w", context.DeadlineExceeded)},
	} {
		text := errorText(err, false)
		if strings.Contains(text, "10.") || !strings.HasPrefix(text, "hop ") {
			t.Errorf("errorText(%v) = %q", err, text)
		}
	}
}

func TestProxyAuth(t *testing.T) {
	o := newOrigin(t)
	proxy := testnet.Serve(t, &Server{Dialer: &fakeChain{target: o.addr}, Auth: creds{"alice": "pw"}})
	for _, tt := range []struct {
		user string
		code int
	}{{"", 407}, {"alice:nope", 407}, {"bob:pw", 407}, {"alice:pw", 200}} {
		c, br := rawConn(t, proxy)
		auth := ""
		if tt.user != "" {
			auth = "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(tt.user)) + "\r\n"
		}
		io.WriteString(c, "GET http://d.example/ HTTP/1.1\r\nHost: d.example\r\n"+auth+"\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("credentials %q: status %d, want %d", tt.user, resp.StatusCode, tt.code)
		}
		if tt.code == 407 && resp.Header.Get("Proxy-Authenticate") == "" {
			t.Errorf("407 without Proxy-Authenticate")
		}
	}
	if got, _ := o.last(); got.Header.Get("Proxy-Authorization") != "" {
		t.Fatal("Proxy-Authorization was forwarded to the destination")
	}
}

type creds map[string]string

func (c creds) Authenticate(_, u, p string) bool { return c[u] == p && p != "" }

func TestSlowClientIsDropped(t *testing.T) {
	proxy := testnet.Serve(t, &Server{Dialer: &fakeChain{}, HandshakeTimeout: 200 * time.Millisecond})
	c, br := rawConn(t, proxy)
	io.WriteString(c, "GET http://d.example/ HTTP/1.1\r\nHost: d.exa") // and then nothing
	begin := time.Now()
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 408 {
		t.Fatalf("response %v, %v: want 408", resp, err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Fatalf("dropped after %v", d)
	}
}

func TestShutdownClosesIdleKeepAlive(t *testing.T) {
	o := newOrigin(t)
	srv := &Server{Dialer: &fakeChain{target: o.addr}, IdleTimeout: time.Minute}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	c, br := rawConn(t, ln.Addr().String())
	io.WriteString(c, "GET http://d.example/ HTTP/1.1\r\nHost: d.example\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	// The connection now idles between requests: Shutdown must not wait
	// for the idle timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	begin := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	<-served
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection after Shutdown: %v, want EOF", err)
	}
}

// userDialer records which user each chain dial was for.
type userDialer struct {
	fakeChain
	mu    sync.Mutex
	users []string
}

func (d *userDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.users = append(d.users, policy.ClientFrom(ctx).User)
	d.mu.Unlock()
	return d.fakeChain.DialContext(ctx, network, addr)
}

// TestPoolsAreKeptPerUser: policy may route two users to one host through
// different chains, so one user's request must never ride on a connection
// dialled for another.
func TestPoolsAreKeptPerUser(t *testing.T) {
	o := newOrigin(t)
	d := &userDialer{fakeChain: fakeChain{target: o.addr}}
	proxy := testnet.Serve(t, &Server{Dialer: d, Auth: creds{"alice": "a", "bob": "b"}})
	for _, user := range []string{"alice:a", "bob:b"} {
		u, _ := url.Parse("http://" + user + "@" + proxy)
		tr := &http.Transport{Proxy: http.ProxyURL(u)}
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		getTimes(t, client, "http://dest.example/", 3)
		tr.CloseIdleConnections()
	}
	if fmt.Sprint(d.users) != "[alice bob]" {
		t.Fatalf("chain dials were for users %v, want one for alice then one for bob", d.users)
	}
}

// A chain whose first hop is the very front end that dials it: the
// CONNECT that comes back in gets 508 at once, and the client's request
// fails after one dial instead of looping. Both request forms.
func TestLoopIntoOwnFrontEndIsRefused(t *testing.T) {
	for _, method := range []string{"GET http://d.example/ HTTP/1.1\r\nHost: d.example\r\n\r\n", "CONNECT d.example:443 HTTP/1.1\r\nHost: d.example:443\r\n\r\n"} {
		t.Run(method[:4], func(t *testing.T) {
			guard := &chain.LoopGuard{}
			ch := &chain.Chain{LoopGuard: guard, HandshakeTimeout: 5 * time.Second}
			var dials atomic.Int32
			counted := chain.DialerFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return ch.DialContext(ctx, network, addr)
			})
			proxy := testnet.Serve(t, &Server{Dialer: counted, LoopGuard: guard})
			ch.Hops = []chain.Hop{&chain.HTTPConnect{Address: proxy}}

			c, br := rawConn(t, proxy)
			io.WriteString(c, method)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "hop 1") {
				t.Fatalf("client got %d %q, want 502 naming hop 1", resp.StatusCode, body)
			}
			if n := dials.Load(); n != 1 {
				t.Fatalf("the front end dialled %d times, want 1", n)
			}
		})
	}
	// What the chain's own conn gets.
	guard := &chain.LoopGuard{}
	proxy := testnet.Serve(t, &Server{Dialer: &fakeChain{err: errors.New("must not dial")}, LoopGuard: guard})
	ch := &chain.Chain{LoopGuard: guard, Hops: []chain.Hop{&chain.HTTPConnect{Address: proxy}}}
	_, err := ch.DialContext(context.Background(), "tcp", "d.example:443")
	if _, ok := errors.AsType[*chain.ReplyError](err); !ok || !strings.Contains(err.Error(), "508 Loop Detected") {
		t.Fatalf("chain's own conn: %v, want a 508 reply", err)
	}
}

// A SOCKS client on the HTTP port is refused in its own protocol at once
// (SOCKS5: no acceptable method; SOCKS4: rejected), and the connection
// closed; the chain is never dialled.
func TestSOCKSClientOnHTTPPort(t *testing.T) {
	for _, tt := range []struct {
		name     string
		greeting []byte
		want     []byte
	}{
		{"SOCKS5", []byte{5, 1, 0}, []byte{5, 0xFF}},
		{"SOCKS5 with auth methods", []byte{5, 2, 0, 2}, []byte{5, 0xFF}},
		{"SOCKS4a", []byte{4, 1, 0, 80, 0, 0, 0, 1, 0, 'd', '.', 'e', 'x', 0}, []byte{0, 0x5B}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeChain{}
			proxy := testnet.Serve(t, &Server{Dialer: f, HandshakeTimeout: time.Minute})
			c, _ := rawConn(t, proxy)
			c.SetDeadline(time.Now().Add(2 * time.Second)) // "at once": well before the handshake timeout
			c.Write(tt.greeting)
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("got % x, %v; want % x and a close", got, err, tt.want)
			}
			if n := f.dials.Load(); n != 0 {
				t.Fatalf("the chain was dialled %d times", n)
			}
		})
	}
}

// TestPoolsAreKeptPerClientConnection: two clients of a listener without
// auth never share an upstream connection (a destination could link them
// by it), each reuses its own, and a client that leaves takes its pool
// with it.
func TestPoolsAreKeptPerClientConnection(t *testing.T) {
	o := newOrigin(t)
	fc := &fakeChain{target: o.addr}
	srv := &Server{Dialer: fc}
	proxy := testnet.Serve(t, srv)
	for i := range 2 {
		tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: proxy})}
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		getTimes(t, client, "http://dest.example/", 3)
		if n := fc.dials.Load(); n != int32(i+1) {
			t.Fatalf("after client %d: %d chain dials, want %d (one per client connection, reused by it)", i+1, n, i+1)
		}
		tr.CloseIdleConnections()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		srv.transports.Lock()
		left := len(srv.transports.live)
		srv.transports.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pools left after their clients went", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// getTimes GETs url n times through client, reading each body to its end
// (so the connection can be reused).
func getTimes(t *testing.T, client *http.Client, url string, n int) {
	t.Helper()
	for range n {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
