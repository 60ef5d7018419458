package socks

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/proxy"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/internal/testnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Dialer that records what it is asked for and either
// connects to target or fails with err.
type recorder struct {
	mu     sync.Mutex
	asked  []string
	target string
	err    error
}

func (r *recorder) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	r.asked = append(r.asked, addr)
	r.mu.Unlock()
	if r.err != nil {
		return nil, r.err
	}
	var d net.Dialer
	return d.DialContext(ctx, network, r.target)
}

func (r *recorder) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.asked...)
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo = %q, %v", buf, err)
	}
}

func TestServerWithIndependentClient(t *testing.T) {
	for _, tt := range []struct {
		name    string
		creds   Credentials
		auth    *proxy.Auth
		wantErr bool
	}{
		{name: "no auth"},
		{name: "user/pass", creds: Credentials{"alice": "pw"}, auth: &proxy.Auth{User: "alice", Password: "pw"}},
		{name: "wrong password", creds: Credentials{"alice": "pw"}, auth: &proxy.Auth{User: "alice", Password: "nope"}, wantErr: true},
		{name: "unknown user", creds: Credentials{"alice": "pw"}, auth: &proxy.Auth{User: "bob", Password: "pw"}, wantErr: true},
		{name: "auth required, client offers none", creds: Credentials{"alice": "pw"}, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{target: testnet.Echo(t)}
			addr := testnet.Serve(t, &Server{Dialer: rec, Auth: authOf(tt.creds)})
			d, err := proxy.SOCKS5("tcp", addr, tt.auth, proxy.Direct)
			if err != nil {
				t.Fatal(err)
			}
			c, err := d.Dial("tcp", "dest.example:80")
			if tt.wantErr {
				if err == nil {
					c.Close()
					t.Fatal("connected without valid credentials")
				}
				if n := len(rec.calls()); n != 0 {
					t.Fatalf("dialer was called %d times for an unauthenticated client", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			roundTrip(t, c, "hello through the front end")
			if got := rec.calls(); len(got) != 1 || got[0] != "dest.example:80" {
				t.Fatalf("dialer asked for %q, want the name dest.example:80", got)
			}
		})
	}
}

// exchange writes raw bytes and returns everything the server sends
// until it closes the connection.
func exchange(t *testing.T, addr string, in []byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(in)
	out, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server neither answered nor closed; got %x", out)
	}
	return out
}

func TestServerRejectsBadRequests(t *testing.T) {
	greet := []byte{5, 1, 0}
	req := func(b ...byte) []byte { return append(append([]byte{}, greet...), b...) }
	failure := func(code byte) []byte { return []byte{5, 0, 5, code, 0, 1, 0, 0, 0, 0, 0, 0} }
	tests := []struct {
		name string
		in   []byte
		want []byte
	}{
		{"BIND", req(5, 2, 0, 1, 192, 0, 2, 1, 0, 80), failure(0x07)},
		{"UDP ASSOCIATE", req(5, 3, 0, 1, 192, 0, 2, 1, 0, 80), failure(0x07)},
		{"unknown address type", req(5, 1, 0, 9, 0, 80), failure(0x08)},
		{"empty name", req(5, 1, 0, 3, 0, 0, 80), failure(0x01)},
		{"name with a space", req(5, 1, 0, 3, 3, 'a', ' ', 'b', 0, 80), failure(0x01)},
		{"name with a colon", req(5, 1, 0, 3, 3, 'a', ':', 'b', 0, 80), failure(0x01)},
		{"unspecified IPv4", req(5, 1, 0, 1, 0, 0, 0, 0, 0, 80), failure(0x01)},
		{"unspecified IPv6", req(append([]byte{5, 1, 0, 4}, make([]byte, 18)...)...), failure(0x01)},
		{"port 0", req(5, 1, 0, 1, 192, 0, 2, 1, 0, 0), failure(0x01)},
		{"no methods", []byte{5, 0}, []byte{5, 0xFF}},
		{"only user/pass offered", []byte{5, 1, 2}, []byte{5, 0xFF}},
		{"HTTP", []byte("GET / HTTP/1.1\r\n\r\n"), []byte(wrongPortReply)},
		{"truncated request", req(5, 1, 0, 3, 10, 'a'), []byte{5, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{target: "127.0.0.1:1"}
			addr := testnet.Serve(t, &Server{Dialer: rec, HandshakeTimeout: time.Second})
			if got := exchange(t, addr, tt.in); !bytes.Equal(got, tt.want) {
				t.Fatalf("got % x, want % x", got, tt.want)
			}
			if calls := rec.calls(); len(calls) != 0 {
				t.Fatalf("dialer was asked for %q", calls)
			}
		})
	}
}

func TestServerRepliesWithTheChainsCode(t *testing.T) {
	rec := &recorder{err: &chain.HopError{Index: 1, Addr: "h:1", Err: &chain.ReplyError{Code: 5}}}
	addr := testnet.Serve(t, &Server{Dialer: rec})
	got := exchange(t, addr, []byte{5, 1, 0, 5, 1, 0, 3, 4, 'h', 'o', 's', 't', 0, 80})
	if want := []byte{5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0}; !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

func TestServerDropsSilentClient(t *testing.T) {
	addr := testnet.Serve(t, &Server{Dialer: &recorder{}, HandshakeTimeout: 100 * time.Millisecond})
	for _, partial := range [][]byte{nil, {5}, {5, 1, 0, 5, 1}} {
		begin := time.Now()
		got := exchange(t, addr, partial)
		if d := time.Since(begin); d > 3*time.Second {
			t.Fatalf("silent client after % x was dropped after %v", partial, d)
		}
		if len(partial) < 3 && len(got) != 0 {
			t.Fatalf("unexpected answer % x", got)
		}
	}
}

func TestServerForwardsPipelinedData(t *testing.T) {
	rec := &recorder{target: testnet.Echo(t)}
	addr := testnet.Serve(t, &Server{Dialer: rec})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Greeting, request and the first payload bytes in one write, as an
	// optimistic client sends them: none may be lost.
	msg := append([]byte{5, 1, 0, 5, 1, 0, 3, 1, 'x', 0, 7}, "early bytes"...)
	c.Write(msg)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	reply := make([]byte, 2+10+len("early bytes"))
	if _, err := io.ReadFull(c, reply); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reply[:4], []byte{5, 0, 5, 0}) || string(reply[12:]) != "early bytes" {
		t.Fatalf("got %q", reply)
	}
}

func TestShutdownLetsLiveConnectionsFinish(t *testing.T) {
	rec := &recorder{target: testnet.Echo(t)}
	srv := &Server{Dialer: rec}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	d, _ := proxy.SOCKS5("tcp", ln.Addr().String(), nil, proxy.Direct)
	c, err := d.Dial("tcp", "dest:1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	<-served // the listener is closed first
	if c2, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c2.Close()
		t.Fatal("still accepting after Shutdown")
	}
	roundTrip(t, c, "still alive during the grace period")
	if err := <-shut; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded (a live connection outlasted the grace)", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the grace period: read err = %v, want EOF", err)
	}
}

func TestShutdownCutsHandshakes(t *testing.T) {
	srv := &Server{Dialer: &recorder{}, HandshakeTimeout: time.Minute}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{5}) // half a greeting, then nothing
	time.Sleep(50 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	begin := time.Now()
	srv.Shutdown(ctx)
	<-served
	if d := time.Since(begin); d > 5*time.Second {
		t.Fatalf("Shutdown took %v: it waited for the handshake timeout", d)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read err = %v, want EOF", err)
	}
}

func TestSOCKS4(t *testing.T) {
	rec := &recorder{target: testnet.Echo(t)}
	addr := testnet.Serve(t, &Server{Dialer: rec})
	for _, tt := range []struct {
		name string
		req  []byte
		dest string
	}{
		{"SOCKS4 address", []byte{4, 1, 0, 80, 192, 0, 2, 1, 'u', 's', 'e', 'r', 0}, "192.0.2.1:80"},
		{"SOCKS4a name", append([]byte{4, 1, 1, 187, 0, 0, 0, 9, 0}, "dest.example\x00"...), "dest.example:443"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Byte by byte: the server must cope with partial reads.
			for _, b := range tt.req {
				c.Write([]byte{b})
				time.Sleep(time.Millisecond)
			}
			reply := make([]byte, 8)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(c, reply); err != nil || reply[1] != 0x5A {
				t.Fatalf("reply % x, %v", reply, err)
			}
			roundTrip(t, c, "through SOCKS4")
			if got := rec.calls(); got[len(got)-1] != tt.dest {
				t.Fatalf("dialer asked for %q, want %q", got, tt.dest)
			}
		})
	}
}

func TestSOCKS4Rejects(t *testing.T) {
	long := bytes.Repeat([]byte{'a'}, 256)
	rejected := []byte{0, 0x5B, 0, 0, 0, 0, 0, 0}
	for _, tt := range []struct {
		name  string
		creds Credentials
		req   []byte
		want  []byte
	}{
		{"BIND", nil, []byte{4, 2, 0, 80, 192, 0, 2, 1, 0}, rejected},
		{"user ID over 255 bytes", nil, append(append([]byte{4, 1, 0, 80, 192, 0, 2, 1}, long...), 0), rejected},
		{"name over 255 bytes", nil, append(append([]byte{4, 1, 0, 80, 0, 0, 0, 1, 0}, long...), 0), rejected},
		{"name with a space", nil, append([]byte{4, 1, 0, 80, 0, 0, 0, 1, 0}, "a b\x00"...), rejected},
		{"address 0.0.0.0", nil, []byte{4, 1, 0, 80, 0, 0, 0, 0, 0}, rejected},
		{"port 0", nil, []byte{4, 1, 0, 0, 192, 0, 2, 1, 0}, rejected},
		{"server requires a password", Credentials{"u": "p"}, []byte{4, 1, 0, 80, 192, 0, 2, 1, 'u', 0}, rejected},
		{"truncated", nil, []byte{4, 1, 0, 80, 192}, nil},
		{"no NUL after the user ID", nil, []byte{4, 1, 0, 80, 192, 0, 2, 1, 'u', 's'}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{target: "127.0.0.1:1"}
			addr := testnet.Serve(t, &Server{Dialer: rec, Auth: authOf(tt.creds), HandshakeTimeout: 300 * time.Millisecond})
			if got := exchange(t, addr, tt.req); !bytes.Equal(got, tt.want) {
				t.Fatalf("got % x, want % x", got, tt.want)
			}
			if calls := rec.calls(); len(calls) != 0 {
				t.Fatalf("dialer was asked for %q", calls)
			}
		})
	}
}

// authOf keeps a nil map from becoming a non-nil Authenticator.
func authOf(c Credentials) Authenticator {
	if c == nil {
		return nil
	}
	return c
}

func TestServerClosesIdleRelays(t *testing.T) {
	rec := &recorder{target: testnet.Echo(t)}
	addr := testnet.Serve(t, &Server{Dialer: rec, IdleTimeout: 200 * time.Millisecond})
	d, _ := proxy.SOCKS5("tcp", addr, nil, proxy.Direct)
	c, err := d.Dial("tcp", "dest:1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "busy")
	begin := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle relay: read err %v, want EOF at the idle timeout", err)
	}
	if d := time.Since(begin); d < 150*time.Millisecond || d > 3*time.Second {
		t.Fatalf("closed after %v, want about 200ms", d)
	}
}

// slowDialer is a recorder whose dials take a while, so replies written
// before the dial and after it cannot arrive together by chance.
type slowDialer struct{ recorder }

func (s *slowDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	time.Sleep(50 * time.Millisecond)
	return s.recorder.DialContext(ctx, network, addr)
}

// A client that pipelines greeting, auth and request gets all three
// answers in one segment (one wake-up, and one relayed write per hop
// before this one in a chain), while a lock-step client still gets each
// answer before it sends the next message.
func TestServerAnswersPipelinedHandshakeInOneWrite(t *testing.T) {
	creds := Credentials{"u": "p"}
	dialer := &slowDialer{recorder{target: testnet.Echo(t)}}
	addr := testnet.Serve(t, &Server{Dialer: dialer, Auth: authOf(creds)})
	greeting, auth := []byte{5, 1, 2}, []byte{1, 1, 'u', 1, 'p'}
	request := []byte{5, 1, 0, 3, 1, 'x', 0, 7}
	want := []byte{5, 2, 1, 0, 5, 0}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(slices.Concat(greeting, auth, request))
	buf := make([]byte, 64)
	n, err := c.Read(buf) // one read: whatever the first segment holds
	if err != nil || n != 2+2+10 || !bytes.Equal(buf[:6], want) {
		t.Fatalf("first read = % x, %v; want all three replies (% x ...)", buf[:n], err, want)
	}
	roundTrip(t, c, "after")

	// Lock-step: each answer comes without the next message being sent.
	l, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.SetDeadline(time.Now().Add(5 * time.Second))
	for i, step := range []struct{ send, want []byte }{{greeting, want[:2]}, {auth, want[2:4]}, {request, want[4:6]}} {
		l.Write(step.send)
		got := make([]byte, len(step.want))
		if _, err := io.ReadFull(l, got); err != nil || !bytes.Equal(got, step.want) {
			t.Fatalf("lock-step step %d: got % x, %v; want % x", i, got, err, step.want)
		}
		if i == 2 {
			io.ReadFull(l, make([]byte, 8)) // the rest of the reply's bound address
		}
	}
	roundTrip(t, l, "lock-step")
}

// lines returns the lines logged at level and above.
func logLines(l *testnet.LogBuffer, level slog.Level) string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		for _, lv := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
			if lv >= level && strings.Contains(line, "level="+lv.String()+" ") {
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, "\n")
}

// An exit that refuses a destination by its range says in its log which
// range and how to allow it; the destination only at debug.
func TestExitRefusalIsLoggedWithTheRange(t *testing.T) {
	v6 := func(a string) []byte {
		b := netip.MustParseAddr(a).As16()
		return append(append([]byte{5, 1, 0, 5, 1, 0, 4}, b[:]...), 0, 80)
	}
	for _, tt := range []struct {
		req  []byte
		dest string
		want []string // in the info-level line
	}{
		{[]byte{5, 1, 0, 5, 1, 0, 1, 10, 1, 2, 3, 0, 80}, "10.1.2.3", []string{"range=10.0.0.0/8", "kind=private", "--allow 10.0.0.0/8", "--allow-private"}},
		{[]byte{5, 1, 0, 5, 1, 0, 1, 127, 9, 9, 9, 0, 80}, "127.9.9.9", []string{"range=127.0.0.0/8", "kind=loopback"}},
		{v6("64:ff9b::a9fe:a9fe"), "64:ff9b::a9fe:a9fe", []string{"range=169.254.0.0/16", "kind=link-local", "via=NAT64"}},
	} {
		var logs testnet.LogBuffer
		log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		addr := testnet.Serve(t, &Server{Dialer: &chain.Exit{}, Logger: log})
		if got := exchange(t, addr, tt.req); len(got) < 4 || got[3] != 0x02 {
			t.Errorf("%s: reply % x, want code 0x02 (not allowed)", tt.dest, got)
		}
		info := logLines(&logs, slog.LevelInfo)
		for _, w := range tt.want {
			if !strings.Contains(info, "refused by the exit's range guard") || !strings.Contains(info, w) {
				t.Errorf("%s: the info log does not say %q:\n%s", tt.dest, w, info)
			}
		}
		if strings.Contains(info, tt.dest) {
			t.Errorf("%s: the destination is in the info log:\n%s", tt.dest, info)
		}
		if !strings.Contains(logLines(&logs, slog.LevelDebug), tt.dest) {
			t.Errorf("%s: the destination is not in the debug log:\n%s", tt.dest, logLines(&logs, slog.LevelDebug))
		}
	}
}

// A chain whose first hop is the very front end that dials it: the
// connection that comes back in is refused at once (not allowed), and
// logged at warn; nothing loops. The client's one request makes one dial.
func TestLoopIntoOwnFrontEndIsRefused(t *testing.T) {
	for _, tt := range []struct {
		name string
		hop  func(addr string) chain.Hop
		code byte // the client's reply: SOCKS4's refusal carries no reason
	}{
		{"socks5", func(addr string) chain.Hop { return &chain.SOCKS5{Address: addr} }, 0x02},
		{"socks5 pipelined", func(addr string) chain.Hop { return &chain.SOCKS5{Address: addr, Pipeline: true} }, 0x02},
		{"socks4a", func(addr string) chain.Hop { return &chain.SOCKS4{Address: addr, A: true} }, 0x01},
	} {
		t.Run(tt.name, func(t *testing.T) {
			guard := &chain.LoopGuard{}
			ch := &chain.Chain{LoopGuard: guard, HandshakeTimeout: 5 * time.Second}
			var dials atomic.Int32
			counted := chain.DialerFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return ch.DialContext(ctx, network, addr)
			})
			var logs testnet.LogBuffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			addr := testnet.Serve(t, &Server{Dialer: counted, LoopGuard: guard, Logger: log})
			ch.Hops = []chain.Hop{tt.hop(addr)}

			got := exchange(t, addr, []byte{5, 1, 0, 5, 1, 0, 3, 4, 'h', 'o', 's', 't', 0, 80})
			if want := []byte{5, 0, 5, tt.code, 0, 1, 0, 0, 0, 0, 0, 0}; !bytes.Equal(got, want) {
				t.Fatalf("client got % x, want % x", got, want)
			}
			if n := dials.Load(); n != 1 {
				t.Fatalf("the front end dialled %d times, want 1", n)
			}
			if warn := logLines(&logs, slog.LevelWarn); !strings.Contains(warn, "refused a loop") || !strings.Contains(warn, "first hop points back") {
				t.Fatalf("warn log:\n%s", warn)
			}
		})
	}
}

// A client that is not the chain's own conn is served, even from loopback.
func TestLoopGuardLetsOtherClientsIn(t *testing.T) {
	guard := &chain.LoopGuard{}
	rec := &recorder{target: testnet.Echo(t)}
	addr := testnet.Serve(t, &Server{Dialer: rec, LoopGuard: guard})
	ch := &chain.Chain{Hops: []chain.Hop{&chain.SOCKS5{Address: addr}}} // no guard: an unrelated client
	c, err := ch.DialContext(context.Background(), "tcp", "dest.example:80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "hello")
}

// An HTTP client on the SOCKS port gets a 400 that says which port this
// is, at once, and a closed connection; a large request head too (it is
// not cut off by a reset).
func TestHTTPClientOnSOCKSPort(t *testing.T) {
	rec := &recorder{target: "127.0.0.1:1"}
	addr := testnet.Serve(t, &Server{Dialer: rec, HandshakeTimeout: time.Minute})
	for _, tt := range []struct {
		name string
		req  func(t *testing.T) *http.Response
	}{
		{"proxy request", func(t *testing.T) *http.Response {
			tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr})}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://dest.example/")
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}},
		{"CONNECT with a large head", func(t *testing.T) *http.Response {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "CONNECT dest.example:443 HTTP/1.1\r\nHost: dest.example:443\r\nX-Pad: "+strings.Repeat("x", 8000)+"\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			resp := tt.req(t)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || string(body) != "this is veilchain's SOCKS port; use the HTTP proxy port\n" {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v", d)
			}
			if calls := rec.calls(); len(calls) != 0 {
				t.Fatalf("dialer was asked for %q", calls)
			}
		})
	}
}

// An authenticated client may hold its request back for RequestWait (a
// chain's prebuilt circuit does), but not a started request, and a
// client without auth gets the handshake's bound throughout.
func TestServerWaitsForAnAuthenticatedClientsRequest(t *testing.T) {
	auth := []byte{5, 1, 2, 1, 5, 'a', 'l', 'i', 'c', 'e', 2, 'p', 'w'}
	request := []byte{5, 1, 0, 3, 4, 'h', 'o', 's', 't', 0, 80}
	for _, tt := range []struct {
		name       string
		creds      Credentials
		first      []byte // sent at once
		then       []byte // sent after a pause longer than the handshake timeout
		wantServed bool
	}{
		{"authenticated, request after a pause", Credentials{"alice": "pw"}, auth, request, true},
		{"authenticated, request stalls midway", Credentials{"alice": "pw"}, append(auth, request[:3]...), request[3:], false},
		{"no auth, request after a pause", nil, []byte{5, 1, 0}, request, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{target: testnet.Echo(t)}
			addr := testnet.Serve(t, &Server{Dialer: rec, Auth: authOf(tt.creds), HandshakeTimeout: 200 * time.Millisecond, RequestWait: 5 * time.Second})
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(tt.first)
			time.Sleep(600 * time.Millisecond)
			c.Write(tt.then)
			c.SetReadDeadline(time.Now().Add(time.Second))
			out, _ := io.ReadAll(c)
			served := len(rec.calls()) == 1
			if served != tt.wantServed {
				t.Fatalf("served = %v (read % x), want %v", served, out, tt.wantServed)
			}
		})
	}
}
