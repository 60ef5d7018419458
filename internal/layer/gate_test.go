package layer

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/veilchain/veilchain/chain"
)

// testIdentity is a hop identity made in a temp dir.
func testIdentity(t testing.TB) *Identity {
	t.Helper()
	id, err := LoadOrCreate(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// arrival is a conn the gate handed to listener i.
type arrival struct {
	i    int
	conn net.Conn
}

// startGate starts a gate on loopback with user alice:secret and returns
// its address and what arrives at its three listeners.
func startGate(t *testing.T, id *Identity, timeout time.Duration) (string, chan arrival) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &Gate{
		TLS:     &tls.Config{Certificates: []tls.Certificate{id.Cert}},
		Auth:    func(_, u, p string) bool { return u == "alice" && p == "secret" },
		Timeout: timeout,
	}
	s, h, d := g.Split(ln)
	arrivals := make(chan arrival, 10)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the closes below: cleanups run last first
	for i, l := range []net.Listener{s, h, d} {
		wg.Go(func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				arrivals <- arrival{i, c}
			}
		})
		t.Cleanup(func() { l.Close() })
	}
	return ln.Addr().String(), arrivals
}

// layerClient dials addr with TLS as a socks5s hop would: pinned, no SNI.
func layerClient(t *testing.T, addr, pin string) *tls.Conn {
	t.Helper()
	h, err := chain.ParseHop("socks5s://" + addr + "?pin=" + pin)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr, h.(*chain.SOCKS5).TLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func socksFlight(user, pass string) []byte {
	b := []byte{5, 1, 2, 1, byte(len(user))}
	b = append(append(b, user...), byte(len(pass)))
	return append(append(b, pass...), 5, 1, 0, 3, 4, 'x', '.', 'e', 'x', 0, 80)
}

func connectFlight(auth string) []byte {
	req := "CONNECT x.ex:443 HTTP/1.1\r\nHost: x.ex:443\r\n"
	if auth != "" {
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(auth)) + "\r\n"
	}
	return []byte(req + "\r\n")
}

// TestGateRoutes: only a client that authenticates in its first flight
// reaches a proxy; the listener it reaches gets every byte it sent.
func TestGateRoutes(t *testing.T) {
	id := testIdentity(t)
	addr, arrivals := startGate(t, id, 300*time.Millisecond)
	tests := []struct {
		name   string
		flight []byte
		want   int
	}{
		{"socks5 with auth in one flight", socksFlight("alice", "secret"), toSOCKS},
		{"socks5 wrong password", socksFlight("alice", "guess"), toDecoy},
		{"socks5 unknown user", socksFlight("mallory", "secret"), toDecoy},
		{"socks5 greeting alone (lock-step client or prober)", []byte{5, 1, 2}, toDecoy},
		{"socks5 offering no auth", []byte{5, 1, 0, 5, 1, 0, 1, 1, 2, 3, 4, 0, 80}, toDecoy},
		{"socks5 auth with a bad version", append([]byte{5, 1, 2, 9}, socksFlight("alice", "secret")[3:]...), toDecoy},
		{"CONNECT with Basic auth", connectFlight("alice:secret"), toHTTP},
		{"CONNECT without auth", connectFlight(""), toDecoy},
		{"CONNECT wrong password", connectFlight("alice:nope"), toDecoy},
		{"absolute-form GET with auth", []byte("GET http://x.ex/ HTTP/1.1\r\nHost: x.ex\r\nProxy-Authorization: Basic " +
			base64.StdEncoding.EncodeToString([]byte("alice:secret")) + "\r\n\r\n"), toHTTP},
		{"a browser's GET", []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), toDecoy},
		{"random bytes", []byte{0x8f, 0x13, 0x00, 0xfe, 0x42, 0x99, '\r', '\n', '\r', '\n'}, toDecoy},
		{"nothing at all", nil, toDecoy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := layerClient(t, addr, id.Pin)
			if _, err := c.Write(tt.flight); err != nil {
				t.Fatal(err)
			}
			var a arrival
			select {
			case a = <-arrivals:
			case <-time.After(5 * time.Second):
				t.Fatal("no listener got the conn")
			}
			defer a.conn.Close()
			if a.i != tt.want {
				t.Fatalf("went to listener %d, want %d", a.i, tt.want)
			}
			c.Write([]byte("after"))
			want := append(append([]byte{}, tt.flight...), "after"...)
			buf := make([]byte, len(want))
			a.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(a.conn, buf); err != nil || !bytes.Equal(buf, want) {
				t.Fatalf("listener read %q, %v; want %q", buf, err, want)
			}
		})
	}
}
