package test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/proxy"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/httpproxy"
	"github.com/veilchain/veilchain/internal/layer"
	"github.com/veilchain/veilchain/internal/testnet"
	"github.com/veilchain/veilchain/socks"
)

func TestMain(m *testing.M) {
	// The binaries these tests start look for the user's config file
	// (veilchain init's) when given no -c: never the developer's own.
	configHome, err := os.MkdirTemp("", "veilchain-test-config-")
	if err != nil {
		println(err.Error())
		exitProcess(1)
	}
	os.Setenv("XDG_CONFIG_HOME", configHome)
	code := m.Run()
	os.RemoveAll(configHome)
	if binDir != "" {
		removeBin()
	}
	if code == 0 {
		// x/crypto/ssh can leave a channel open waiting forever when it
		// races its connection's end (see chain's sshOpenRace).
		if err := goleak.Find(goleak.IgnoreTopFunction("golang.org/x/crypto/ssh.(*mux).openChannel")); err != nil {
			println("goroutine leak:", err.Error())
			code = 1
		}
	}
	exitProcess(code)
}

// recordingDialer remembers the addresses it is asked to dial.
type recordingDialer struct {
	next chain.Dialer
	mu   sync.Mutex
	seen []string
}

func (r *recordingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	r.seen = append(r.seen, addr)
	r.mu.Unlock()
	return r.next.DialContext(ctx, network, addr)
}

func (r *recordingDialer) addrs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// twoHops is a front end chained through two `serve`-style hops. The exit
// resolves names with its own DNS server and sends from 127.0.0.2.
type twoHops struct {
	front    string
	hop1     string
	exitAddr string
	exitSeen *recordingDialer
	hop1Seen *recordingDialer
	// The same hops behind a gate, as serve's TLS side: address and pin.
	hop1TLS, hop1Pin string
	exitTLS, exitPin string
}

func newTwoHops(t *testing.T, exit *chain.Exit, exitCreds socks.Credentials, frontHops func(hop1, exit string) []chain.Hop) *twoHops {
	t.Helper()
	th := &twoHops{
		exitSeen: &recordingDialer{next: exit},
		hop1Seen: &recordingDialer{next: &chain.Exit{AllowPrivate: true}},
	}
	th.exitAddr = testnet.Serve(t, &socks.Server{Dialer: th.exitSeen, Auth: exitCreds})
	th.hop1 = testnet.Serve(t, &socks.Server{Dialer: th.hop1Seen})
	th.exitTLS, th.exitPin = serveLayered(t, &socks.Server{Dialer: th.exitSeen, Auth: exitCreds}, exitCreds)
	th.hop1TLS, th.hop1Pin = serveLayered(t, &socks.Server{Dialer: th.hop1Seen}, nil)
	th.front = testnet.Serve(t, &socks.Server{Dialer: &chain.Chain{
		Hops:             frontHops(th.hop1, th.exitAddr),
		HandshakeTimeout: 500 * time.Millisecond,
	}})
	return th
}

// serveLayered serves srv behind a gate, as serve's TLS side does, and
// returns its address and the pin of its key.
func serveLayered(t *testing.T, srv *socks.Server, creds socks.Credentials) (addr, pin string) {
	t.Helper()
	id, err := layer.LoadOrCreate(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &layer.Gate{TLS: &tls.Config{Certificates: []tls.Certificate{id.Cert}}, Timeout: 5 * time.Second}
	if creds != nil {
		g.Auth = creds.Authenticate
	}
	socksLn, httpLn, decoyLn := g.Split(ln)
	decoy := layer.Decoy(nil)
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(socksLn) })
	wg.Go(func() { decoy.Serve(decoyLn) })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		decoy.Close()
		httpLn.Close()
		wg.Wait()
	})
	return ln.Addr().String(), id.Pin
}

// layeredHops is hops with each of th's hops by socks5s to its gate, and
// any other hop (a closed port, a silent one) by socks5s too.
func (th *twoHops) layeredHops(t *testing.T, hops []chain.Hop) []chain.Hop {
	t.Helper()
	var out []chain.Hop
	for _, h := range hops {
		s := h.(*chain.SOCKS5)
		addr, pin := s.Address, "sha256:"+strings.Repeat("A", 43)
		switch s.Address {
		case th.hop1:
			addr, pin = th.hop1TLS, th.hop1Pin
		case th.exitAddr:
			addr, pin = th.exitTLS, th.exitPin
		}
		user := ""
		if s.User != "" {
			user = s.User + ":" + s.Password + "@"
		}
		l, err := chain.ParseHop("socks5s://" + user + addr + "?pin=" + pin)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

func TestDestinationSeesOnlyTheExit(t *testing.T) {
	dest := newDestination(t)
	zone, dnsAddr := exitDNS(t)
	out := exitIP(t)
	exit := &chain.Exit{AllowPrivate: true, LocalIP: out, Resolver: resolverAt(dnsAddr)}
	th := newTwoHops(t, exit, socks.Credentials{"u": "p"}, func(hop1, exitAddr string) []chain.Hop {
		return []chain.Hop{&chain.SOCKS5{Address: hop1}, &chain.SOCKS5{Address: exitAddr, User: "u", Password: "p"}}
	})

	// An independent SOCKS5 client asks for the destination by name.
	sd, err := proxy.SOCKS5("tcp", th.front, nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{DialContext: sd.(proxy.ContextDialer).DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + destName + ":" + dest.port + "/")
	if err != nil {
		t.Fatalf("request through the chain: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	peers := dest.seenPeers()
	if len(peers) != 1 || !strings.HasPrefix(peers[0], out.String()+":") {
		t.Fatalf("destination saw peers %q, want only the exit's address %s (response %q)", peers, out, body)
	}
	if got := th.exitSeen.addrs(); len(got) != 1 || got[0] != destName+":"+dest.port {
		t.Fatalf("exit was asked for %q, want the name %s:%s (ATYP 0x03)", got, destName, dest.port)
	}
	if got := th.hop1Seen.addrs(); len(got) != 1 || got[0] != th.exitAddr {
		t.Fatalf("hop 1 was asked for %q, want only the exit's address %s", got, th.exitAddr)
	}
	if n := zone.Queries(destName); n == 0 {
		t.Fatalf("the exit's resolver got no query for %s", destName)
	}
}

// connect runs a raw SOCKS5 CONNECT for host:port and returns the reply code.
func connect(t *testing.T, front, host string, port uint16) byte {
	t.Helper()
	c, code := openSOCKS(t, front, host, port)
	c.Close()
	return code
}

// openSOCKS sends greeting and CONNECT in one write and reads both
// replies; it returns the conn, past the reply, and the reply code.
func openSOCKS(t *testing.T, front, host string, port uint16) (net.Conn, byte) {
	t.Helper()
	c := dialFront(t, front)
	req := append([]byte{5, 1, 0, 5, 1, 0, 3, byte(len(host))}, host...)
	req = binary.BigEndian.AppendUint16(req, port)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	// Method reply, then VER REP RSV ATYP, BND.ADDR and BND.PORT.
	reply := make([]byte, 2+4+16+2)
	if _, err := io.ReadFull(c, reply[:6]); err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	rest := 4 + 2
	if reply[5] == 4 {
		rest = 16 + 2
	}
	if _, err := io.ReadFull(c, reply[6:6+rest]); err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	return c, reply[3]
}

// TestFailClosed breaks the chain in each way it can break and checks
// what the client is told, through every front end and handshake style:
// the SOCKS reply code, lock-step and pipelined; the HTTP status for a
// plain request (sent right behind pipelined handshakes); and with an
// early reply, the code or, once success went out, a bare close. Nothing
// ever reaches the destination.
func TestFailClosed(t *testing.T) {
	dest := newDestination(t)
	_, dnsAddr := exitDNS(t)
	silent := testnet.Silent(t)
	var port uint16
	for _, c := range dest.port {
		port = port*10 + uint16(c-'0')
	}

	tests := []struct {
		name     string
		exit     chain.Exit
		hops     func(hop1, exit string) []chain.Hop
		host     string
		want     byte
		wantHTTP int
		// Through layered hops, when it differs: a serve's gate answers
		// nothing to wrong credentials, so a lock-step client times out
		// (a client with a request behind them hears the decoy's 400).
		layeredWant     byte
		layeredWantHTTP int
	}{
		{"first hop down", chain.Exit{AllowPrivate: true}, func(_, exit string) []chain.Hop {
			return []chain.Hop{&chain.SOCKS5{Address: closedPort(t)}, &chain.SOCKS5{Address: exit, User: "u", Password: "p"}}
		}, destName, 0x05, 502, 0, 0},
		{"exit down", chain.Exit{AllowPrivate: true}, func(hop1, _ string) []chain.Hop {
			return []chain.Hop{&chain.SOCKS5{Address: hop1}, &chain.SOCKS5{Address: closedPort(t)}}
		}, destName, 0x05, 502, 0, 0},
		{"exit rejects auth", chain.Exit{AllowPrivate: true}, func(hop1, exit string) []chain.Hop {
			return []chain.Hop{&chain.SOCKS5{Address: hop1}, &chain.SOCKS5{Address: exit, User: "u", Password: "wrong"}}
		}, destName, 0x02, 502, 0x04, 502},
		{"exit silent", chain.Exit{AllowPrivate: true}, func(hop1, _ string) []chain.Hop {
			return []chain.Hop{&chain.SOCKS5{Address: hop1}, &chain.SOCKS5{Address: silent}}
		}, destName, 0x04, 504, 0, 0},
		{"exit refuses loopback by default", chain.Exit{}, func(hop1, exit string) []chain.Hop {
			return []chain.Hop{&chain.SOCKS5{Address: hop1}, &chain.SOCKS5{Address: exit, User: "u", Password: "p"}}
		}, destName, 0x02, 403, 0, 0},
		{"exit cannot resolve", chain.Exit{AllowPrivate: true}, func(hop1, exit string) []chain.Hop {
			return []chain.Hop{&chain.SOCKS5{Address: hop1}, &chain.SOCKS5{Address: exit, User: "u", Password: "p"}}
		}, "unknown.veilchain.test", 0x04, 502, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exit := tt.exit
			exit.Resolver = resolverAt(dnsAddr)
			th := newTwoHops(t, &exit, socks.Credentials{"u": "p"}, tt.hops)
			before := dest.accepted.Load()
			if got := connect(t, th.front, tt.host, port); got != tt.want {
				t.Fatalf("reply 0x%02x (%s), want 0x%02x (%s)", got, chain.ReplyText(got), tt.want, chain.ReplyText(tt.want))
			}

			pipelined := &chain.Chain{Hops: tt.hops(th.hop1, th.exitAddr), HandshakeTimeout: 500 * time.Millisecond}
			for _, h := range pipelined.Hops {
				h.(*chain.SOCKS5).Pipeline = true
			}
			front := testnet.Serve(t, &socks.Server{Dialer: pipelined})
			if got := connect(t, front, tt.host, port); got != tt.want {
				t.Errorf("pipelined: reply 0x%02x (%s), want 0x%02x", got, chain.ReplyText(got), tt.want)
			}
			httpFront := testnet.Serve(t, &httpproxy.Server{Dialer: pipelined})
			if got := httpGetStatus(t, httpFront, "http://"+tt.host+":"+dest.port+"/"); got != tt.wantHTTP {
				t.Errorf("HTTP front end, pipelined: status %d, want %d", got, tt.wantHTTP)
			}
			// An early reply answers once the handshakes are sent: only a
			// first hop that cannot be reached is still reported as such.
			wantEarly, wantEarlyHTTP := byte(0), 200
			if tt.name == "first hop down" {
				wantEarly, wantEarlyHTTP = tt.want, tt.wantHTTP
			}
			early := testnet.Serve(t, &socks.Server{Dialer: pipelined, EarlyReply: true})
			if got, closed := connectEarly(t, early, tt.host, port); got != wantEarly || closed != (got == 0) {
				t.Errorf("early reply: reply 0x%02x, closed %v; want 0x%02x (and a close after a success)", got, closed, wantEarly)
			}
			earlyHTTP := testnet.Serve(t, &httpproxy.Server{Dialer: pipelined, EarlyReply: true})
			if got, closed := connectHTTPEarly(t, earlyHTTP, tt.host+":"+dest.port); got != wantEarlyHTTP || closed != (got == 200) {
				t.Errorf("HTTP CONNECT, early reply: status %d, closed %v; want %d (and a close after a 200)", got, closed, wantEarlyHTTP)
			}
			// Layered: TLS to each hop, replies read late (see Chain).
			layered := &chain.Chain{Hops: th.layeredHops(t, tt.hops(th.hop1, th.exitAddr)), HandshakeTimeout: 500 * time.Millisecond}
			want, wantHTTP := tt.want, tt.wantHTTP
			if tt.layeredWant != 0 {
				want, wantHTTP = tt.layeredWant, tt.layeredWantHTTP
			}
			if got := connect(t, testnet.Serve(t, &socks.Server{Dialer: layered}), tt.host, port); got != want {
				t.Errorf("layered: reply 0x%02x (%s), want 0x%02x (%s)", got, chain.ReplyText(got), want, chain.ReplyText(want))
			}
			if got := httpGetStatus(t, testnet.Serve(t, &httpproxy.Server{Dialer: layered}), "http://"+tt.host+":"+dest.port+"/"); got != wantHTTP {
				t.Errorf("HTTP front end, layered: status %d, want %d", got, wantHTTP)
			}
			if n := dest.accepted.Load() - before; n != 0 {
				t.Fatalf("the destination accepted %d connection(s): something went around the chain", n)
			}
		})
	}
	// The chain works with the same pieces, so the failures above are the
	// ones the cases name, not a broken setup.
	exit := &chain.Exit{AllowPrivate: true, Resolver: resolverAt(dnsAddr)}
	th := newTwoHops(t, exit, socks.Credentials{"u": "p"}, func(hop1, exitAddr string) []chain.Hop {
		return []chain.Hop{&chain.SOCKS5{Address: hop1}, &chain.SOCKS5{Address: exitAddr, User: "u", Password: "p"}}
	})
	if got := connect(t, th.front, destName, port); got != 0 {
		t.Fatalf("control case: reply 0x%02x", got)
	}
	pipelined := &chain.Chain{Hops: []chain.Hop{&chain.SOCKS5{Address: th.hop1, Pipeline: true},
		&chain.SOCKS5{Address: th.exitAddr, User: "u", Password: "p", Pipeline: true}}}
	if got := httpGetStatus(t, testnet.Serve(t, &httpproxy.Server{Dialer: pipelined}), "http://"+destName+":"+dest.port+"/"); got != 200 {
		t.Fatalf("control case, HTTP front end, pipelined: status %d", got)
	}
	if got, closed := connectEarly(t, testnet.Serve(t, &socks.Server{Dialer: pipelined, EarlyReply: true}), destName, port); got != 0 || closed {
		t.Fatalf("control case, early reply: reply 0x%02x, closed %v", got, closed)
	}
	if got, closed := connectHTTPEarly(t, testnet.Serve(t, &httpproxy.Server{Dialer: pipelined, EarlyReply: true}), destName+":"+dest.port); got != 200 || closed {
		t.Fatalf("control case, HTTP CONNECT with early reply: status %d, closed %v", got, closed)
	}
	layered := &chain.Chain{Hops: th.layeredHops(t, []chain.Hop{&chain.SOCKS5{Address: th.hop1}, &chain.SOCKS5{Address: th.exitAddr, User: "u", Password: "p"}})}
	if got := connect(t, testnet.Serve(t, &socks.Server{Dialer: layered}), destName, port); got != 0 {
		t.Fatalf("control case, layered: reply 0x%02x", got)
	}
	if got := httpGetStatus(t, testnet.Serve(t, &httpproxy.Server{Dialer: layered}), "http://"+destName+":"+dest.port+"/"); got != 200 {
		t.Fatalf("control case, HTTP front end, layered: status %d", got)
	}
	if n := dest.accepted.Load(); n != 6 {
		t.Fatalf("control case: the destination accepted %d connections, want 4", n)
	}
}

// dialFront connects to a front end, with 10 s for the whole exchange.
func dialFront(t *testing.T, front string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// httpGetStatus sends one plain GET for url through an HTTP proxy and
// returns the status it answers.
func httpGetStatus(t *testing.T, front, url string) int {
	t.Helper()
	c := dialFront(t, front)
	defer c.Close()
	io.WriteString(c, "GET "+url+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the proxy's answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// connectHTTPEarly is connectEarly for an HTTP proxy's CONNECT: the
// status, and after a 200, whether the tunnel then closed with no byte
// from the destination.
func connectHTTPEarly(t *testing.T, front, hostPort string) (int, bool) {
	t.Helper()
	c := dialFront(t, front)
	defer c.Close()
	io.WriteString(c, "CONNECT "+hostPort+" HTTP/1.1\r\nHost: "+hostPort+"\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		t.Fatalf("reading the CONNECT answer: %v", err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		return resp.StatusCode, false
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	n, err := br.Read(make([]byte, 1))
	return 200, n == 0 && err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// connectEarly is connect for a front end that may answer early: it
// returns the reply code and, after a success, whether the connection
// then closed with no byte from the destination.
func connectEarly(t *testing.T, front, host string, port uint16) (byte, bool) {
	t.Helper()
	c, code := openSOCKS(t, front, host, port)
	defer c.Close()
	if code != 0 {
		return code, false
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	n, err := c.Read(make([]byte, 1))
	return 0, n == 0 && err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestCutShortIsNotComplete: when the destination resets a download
// midway, the client sees an error, not a clean end: each relay passes
// the reset on (hop by hop, through layered hops too), where a FIN would
// make a truncated file look whole. A destination that ends cleanly is
// read to its clean end (the control).
func TestCutShortIsNotComplete(t *testing.T) {
	payload := make([]byte, 256<<10)
	for _, reset := range []bool{true, false} {
		dest := testnet.Accept(t, func(c net.Conn) {
			defer c.Close()
			// The client asks first: a reset before the exit's connect has
			// completed would fail the dial, not cut the download.
			if _, err := c.Read(make([]byte, 1)); err != nil {
				return
			}
			c.Write(payload)
			if reset {
				c.(*net.TCPConn).SetLinger(0)
			}
		})
		_, port, _ := net.SplitHostPort(dest)
		exit := &chain.Exit{AllowPrivate: true}
		th := newTwoHops(t, exit, socks.Credentials{"u": "p"}, func(hop1, exitAddr string) []chain.Hop {
			return []chain.Hop{&chain.SOCKS5{Address: hop1}, &chain.SOCKS5{Address: exitAddr, User: "u", Password: "p"}}
		})
		layered := testnet.Serve(t, &socks.Server{Dialer: &chain.Chain{Hops: th.layeredHops(t,
			[]chain.Hop{&chain.SOCKS5{Address: th.hop1}, &chain.SOCKS5{Address: th.exitAddr, User: "u", Password: "p"}})}})
		for _, front := range []struct{ name, addr string }{{"plain", th.front}, {"layered", layered}} {
			sd, _ := proxy.SOCKS5("tcp", front.addr, nil, proxy.Direct)
			c, err := sd.Dial("tcp", "127.0.0.1:"+port)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write([]byte{1})
			n, err := io.Copy(io.Discard, c)
			c.Close()
			switch {
			case reset && err == nil:
				t.Errorf("%s: the destination reset after %d bytes, and the client read %d and a clean end", front.name, len(payload), n)
			case !reset && (err != nil || n != int64(len(payload))):
				t.Errorf("%s, clean end: read %d, %v; want all %d and no error", front.name, n, err, len(payload))
			}
		}
	}
}
