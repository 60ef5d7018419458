package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/internal/testnet"
	"github.com/veilchain/veilchain/socks"
)

// nxResolver answers every name with "no such host".
type nxResolver struct{}

func (nxResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestLeakTestCatchesLocalResolution: a dialer that looks names up on
// this machine, as a leaky proxy would, must fail the self-test; one that
// takes the name to its exit without must pass it; and when the chain
// fails before its exit, the test has not run and says so.
func TestLeakTestCatchesLocalResolution(t *testing.T) {
	local := &countingResolver{next: nxResolver{}}
	atExit := &chain.HopError{Index: 1, Addr: "h:2", Err: &chain.ReplyError{Code: 4}, Destination: true}
	for _, tt := range []struct {
		name   string
		dialer chain.DialerFunc
		ok     bool
		want   string
	}{
		{"leaky", func(ctx context.Context, _, a string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(a)
			local.LookupNetIP(ctx, "ip", host)
			return nil, atExit
		}, false, "DNS LEAK: this machine's resolver was asked 1 time(s)"},
		{"tight, the exit answered", func(context.Context, string, string) (net.Conn, error) { return nil, atExit }, true, "asked 0 times"},
		{"first hop down", func(context.Context, string, string) (net.Conn, error) {
			return nil, &chain.HopError{Index: 0, Addr: "h:1", Err: errors.New("connection refused")}
		}, true, "not run: the chain did not take the test's name to its exit"},
		{"second hop unreachable", func(context.Context, string, string) (net.Conn, error) {
			return nil, &chain.HopError{Index: 0, Addr: "h:1", Err: &chain.ReplyError{Code: 5}}
		}, true, "not run"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := chainReport{OK: true}
			leakTest(context.Background(), &r, tt.dialer, local, "check.invalid")
			got := strings.Join(r.Err, "; ")
			if r.Leak != nil {
				got = r.Leak.String() + got
			}
			if r.OK != tt.ok || !strings.Contains(got, tt.want) {
				t.Fatalf("report %+v, want ok %t and %q", r, tt.ok, tt.want)
			}
		})
	}
}

// check leaves the process's resolver alone: the chains get one of
// their own, and a first hop given by name is still looked up.
func TestCheckKeepsTheDefaultResolver(t *testing.T) {
	before := net.DefaultResolver
	_, port, _ := net.SplitHostPort(refusingExit(t))
	out, _ := runApp("check", "--hop", "socks5://localhost:"+port)
	if net.DefaultResolver != before {
		t.Fatal("check replaced net.DefaultResolver")
	}
	if !strings.Contains(out, "localhost:"+port) || strings.Contains(out, "no such host") {
		t.Fatalf("check could not look the hop's name up:\n%s", out)
	}
}

// refusingExit is a SOCKS5 exit that answers every CONNECT with failure.
func refusingExit(t *testing.T) string {
	return testnet.Serve(t, &socks.Server{Dialer: chain.DialerFunc(func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("test exit reaches nothing")
	})})
}

// The far-side DNS test names its upstream. An upstream nothing relies on
// that does not answer is a warning, not a failed chain; one the user
// gave, or a DNS front end uses, fails it. --no-dns skips the test.
func TestCheckFarSideDNS(t *testing.T) {
	hop := "socks5://" + refusingExit(t)
	withDNS := filepath.Join(t.TempDir(), "dns.yaml")
	os.WriteFile(withDNS, []byte("listeners:\n  - name: default\n    socks: 127.0.0.1:1080\n    dns: 127.0.0.1:5353\n    chain: default\n"), 0o600)
	for _, tt := range []struct {
		name    string
		args    []string
		ok      bool
		want    []string
		notWant []string
	}{
		{"default upstream", nil, true, []string{"chain default (strict): ok", "warning: far-side DNS: 9.9.9.9:53 (dns.upstream) did not answer", "--dns-upstream", "--no-dns"}, []string{"error:"}},
		{"given upstream", []string{"--dns-upstream", "192.0.2.53:53"}, false, []string{"FAILED", "error: far-side DNS: 192.0.2.53:53 (--dns-upstream) did not answer"}, nil},
		{"upstream of a DNS front end", []string{"-c", withDNS}, false, []string{"FAILED", "error: far-side DNS: 9.9.9.9:53 (dns.upstream)"}, nil},
		{"no DNS", []string{"--no-dns"}, true, []string{"chain default (strict): ok"}, []string{"far-side DNS", "error:", "warning:"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runApp(append([]string{"check", "--hop", hop}, tt.args...)...)
			if (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok %t", err, tt.ok)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not say %q:\n%s", w, out)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output says %q:\n%s", w, out)
				}
			}
		})
	}
	if _, err := runApp("check", "--hop", hop, "--dns-upstream", "9.9.9.9"); err == nil || !strings.Contains(err.Error(), "--dns-upstream") {
		t.Errorf("a bad --dns-upstream: %v", err)
	}
}

func TestParseEchoedAddr(t *testing.T) {
	for _, tt := range []struct {
		body, want string // want "" for no address
	}{
		{"203.0.113.7\n", "203.0.113.7"},
		{"  2001:db8::7 ", "2001:db8::7"},
		{"203.0.113.7:41234", "203.0.113.7"},
		{`{"ip":"203.0.113.7"}`, "203.0.113.7"},
		{`{"origin": "203.0.113.7, 198.51.100.1"}`, "203.0.113.7"},
		{`{"peer_ip":"2001:db8::1","country":"XX"}`, "2001:db8::1"},
		{`{"address":"203.0.113.9"}`, "203.0.113.9"},
		{`{"ip":"not an ip","address":"203.0.113.9"}`, "203.0.113.9"},
		{`{"ip":42}`, ""},
		{"<html><body>Your IP is 203.0.113.7</body></html>", ""},
		{"", ""},
	} {
		got, ok := parseEchoedAddr([]byte(tt.body))
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("parseEchoedAddr(%q) = %q, %t; want %q", tt.body, got, ok, tt.want)
		}
	}
}

// The exit address comes parsed out of the echo's answer; an answer
// without one is an error that does not repeat the body.
func TestEchoExit(t *testing.T) {
	for _, tt := range []struct {
		status    int
		body      string
		want, err string
	}{
		{200, `{"ip": "203.0.113.7"}`, "203.0.113.7", ""},
		{200, "<html>secret-page</html>", "", "answered no address: want a bare IP, or JSON"},
		{503, "203.0.113.7", "", "answered 503 Service Unavailable"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(tt.status)
			io.WriteString(w, tt.body)
		}))
		got, err := echoExit(context.Background(), srv.Client(), srv.URL)
		srv.Close()
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("%q: %q, %v; want %q", tt.body, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "secret-page")):
			t.Errorf("%q: err = %v, want %q without the body", tt.body, err, tt.err)
		}
	}
}

// Without --echo-url, check says how to get the exit's address.
func TestCheckSaysHowToGetTheExitAddress(t *testing.T) {
	out, _ := runApp("check", "--no-dns", "--hop", "socks5://"+refusingExit(t))
	if !strings.Contains(out, "exit address: not checked; give --echo-url URL") {
		t.Fatalf("output:\n%s", out)
	}
}

// A hop that accepts and never answers costs check its --timeout per
// step, not 40 s, and is reported as timed out.
func TestCheckTimeoutBoundsASilentHop(t *testing.T) {
	silent := testnet.Silent(t)
	begin := time.Now()
	out, err := runApp("check", "--no-dns", "--timeout", "300ms", "--hop", "socks5://"+silent)
	took := time.Since(begin)
	if err == nil || !strings.Contains(out, "FAILED") || !strings.Contains(out, "timed out after 300ms") {
		t.Fatalf("check of a silent hop: %v\n%s", err, out)
	}
	if took > 5*time.Second {
		t.Fatalf("check took %v with --timeout 300ms", took)
	}
}

// A hop that fails is reported once, in its row: the tests through the
// whole chain, which would fail on it again in other words, are not run.
func TestCheckReportsAFailedHopOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	out, err := runApp("check", "--dns-upstream", "127.0.0.1:53", "--echo-url", "http://x.invalid/", "--hop", "socks5://"+dead)
	if err == nil || strings.Count(out, "connection refused") != 1 {
		t.Fatalf("check of a dead hop (%v), want its failure said once:\n%s", err, out)
	}
}
