// Package test holds veilchain's end-to-end tests: in-process chains of
// real servers on loopback, and the built binary driven by real clients.
package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veilchain/veilchain/internal/testnet"
	"github.com/veilchain/veilchain/resolver"
)

// destName is the destination's name. Only the exit's DNS server knows
// it: if anything on the client side tried to resolve it, the request
// would fail, and the client-side stand-in resolver would count a query.
const destName = "dest.veilchain.test"

// requireProgram skips when a program is missing, or fails when
// VEILCHAIN_E2E_REQUIRED=1 (CI), so that nothing silently skips there.
func requireProgram(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		testnet.SkipOrFail(t, "%s not installed: %v", name, err)
	}
	return path
}

// destination is an HTTP server that records who connected and what it got.
type destination struct {
	addr     string // 127.0.0.1:port
	port     string
	accepted atomic.Int32

	mu      sync.Mutex
	peers   []string
	headers []http.Header
}

func newDestination(t *testing.T) *destination { return newDest(t, false) }

// newTLSDestination is a destination that speaks HTTPS (self-signed).
func newTLSDestination(t *testing.T) *destination { return newDest(t, true) }

func newDest(t *testing.T, useTLS bool) *destination {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &destination{addr: ln.Addr().String()}
	_, d.port, _ = net.SplitHostPort(d.addr)
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d.mu.Lock()
			d.peers = append(d.peers, r.RemoteAddr)
			d.headers = append(d.headers, r.Header.Clone())
			d.mu.Unlock()
			switch r.URL.Path {
			case "/echo":
				io.Copy(w, r.Body)
				return
			case "/ip": // what check's --echo-url wants: the caller's address alone
				fmt.Fprintln(w, r.RemoteAddr)
				return
			}
			fmt.Fprintf(w, "peer %s\n", r.RemoteAddr)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				d.accepted.Add(1)
			}
		},
	}
	if useTLS {
		ts := httptest.NewUnstartedServer(srv.Handler)
		ts.Listener.Close()
		ts.Listener = ln
		ts.Config = srv
		ts.StartTLS()
		t.Cleanup(ts.Close)
		return d
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return d
}

func (d *destination) seenHeaders() []http.Header {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]http.Header(nil), d.headers...)
}

func (d *destination) seenPeers() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.peers...)
}

// exitDNS starts the exit's own DNS server, which knows destName.
func exitDNS(t *testing.T) (*resolver.Zone, string) {
	t.Helper()
	z := &resolver.Zone{Records: map[string]netip.Addr{destName: netip.MustParseAddr("127.0.0.1")}}
	addr, err := z.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { z.Close() })
	return z, addr
}

// resolverAt resolves only with the DNS server at addr.
func resolverAt(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// exitIP is a loopback address other than the client's 127.0.0.1, so the
// destination can tell the exit from the client.
func exitIP(t *testing.T) netip.Addr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		testnet.SkipOrFail(t, "127.0.0.2 is not usable on this loopback: %v", err)
	}
	ln.Close()
	return netip.MustParseAddr("127.0.0.2")
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
