package test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/proxy"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/internal/testnet"
	"github.com/veilchain/veilchain/socks"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		removeBin()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
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
	exitAddr string
	exitSeen *recordingDialer
	hop1Seen *recordingDialer
}

func newTwoHops(t *testing.T, exit *chain.Exit, exitCreds socks.Credentials, frontHops func(hop1, exit string) []chain.Hop) *twoHops {
	t.Helper()
	th := &twoHops{
		exitSeen: &recordingDialer{next: exit},
		hop1Seen: &recordingDialer{next: &chain.Exit{AllowPrivate: true}},
	}
	th.exitAddr = testnet.Serve(t, &socks.Server{Dialer: th.exitSeen, Auth: exitCreds})
	hop1 := testnet.Serve(t, &socks.Server{Dialer: th.hop1Seen})
	th.front = testnet.Serve(t, &socks.Server{Dialer: &chain.Chain{
		Hops:             frontHops(hop1, th.exitAddr),
		HandshakeTimeout: 500 * time.Millisecond,
	}})
	return th
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
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := append([]byte{5, 1, 0, 5, 1, 0, 3, byte(len(host))}, host...)
	req = binary.BigEndian.AppendUint16(req, port)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 2+4)
	if _, err := io.ReadFull(c, reply); err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	return reply[3]
}

func TestFailClosed(t *testing.T) {
	dest := newDestination(t)
	_, dnsAddr := exitDNS(t)
	silent := testnet.Silent(t)
	var port uint16
	for _, c := range dest.port {
		port = port*10 + uint16(c-'0')
	}

	tests := []struct {
		name string
		exit chain.Exit
		hops func(hop1, exit string) []chain.Hop
		host string
		want byte
	}{
		{"first hop down", chain.Exit{AllowPrivate: true}, func(_, exit string) []chain.Hop {
			return []chain.Hop{&chain.SOCKS5{Address: closedPort(t)}, &chain.SOCKS5{Address: exit, User: "u", Password: "p"}}
		}, destName, 0x05},
		{"exit down", chain.Exit{AllowPrivate: true}, func(hop1, _ string) []chain.Hop {
			return []chain.Hop{&chain.SOCKS5{Address: hop1}, &chain.SOCKS5{Address: closedPort(t)}}
		}, destName, 0x05},
		{"exit rejects auth", chain.Exit{AllowPrivate: true}, func(hop1, exit string) []chain.Hop {
			return []chain.Hop{&chain.SOCKS5{Address: hop1}, &chain.SOCKS5{Address: exit, User: "u", Password: "wrong"}}
		}, destName, 0x02},
		{"exit silent", chain.Exit{AllowPrivate: true}, func(hop1, _ string) []chain.Hop {
			return []chain.Hop{&chain.SOCKS5{Address: hop1}, &chain.SOCKS5{Address: silent}}
		}, destName, 0x04},
		{"exit refuses loopback by default", chain.Exit{}, func(hop1, exit string) []chain.Hop {
			return []chain.Hop{&chain.SOCKS5{Address: hop1}, &chain.SOCKS5{Address: exit, User: "u", Password: "p"}}
		}, destName, 0x02},
		{"exit cannot resolve", chain.Exit{AllowPrivate: true}, func(hop1, exit string) []chain.Hop {
			return []chain.Hop{&chain.SOCKS5{Address: hop1}, &chain.SOCKS5{Address: exit, User: "u", Password: "p"}}
		}, "unknown.veilchain.test", 0x04},
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
}
