package statuspage

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/internal/stats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	addr = "127.0.0.1:9080"
	dest = "secret-destination.example:443"
	user = "alice-the-user"
)

// registry has a two-hop chain (a pool at the exit), one live connection
// by a user to dest, and one that failed at hop 2.
func registry(t *testing.T) *stats.Registry {
	t.Helper()
	hop1, exitA, exitB := &chain.SOCKS5{Address: "10.0.0.1:1080"}, &chain.SOCKS5{Address: "10.0.0.2:1080"}, &chain.SOCKS5{Address: "10.0.0.3:1080"}
	health := &chain.Health{}
	health.Succeeded(hop1, 3*time.Millisecond)
	health.Succeeded(exitA, 9*time.Millisecond)
	health.Failed(exitB)
	ch := &chain.Chain{Hops: []chain.Hop{hop1, &chain.Pool{Members: []chain.Hop{exitA, exitB}}}, Health: health}
	reg := &stats.Registry{Chains: func() map[string]chain.Dialer { return map[string]chain.Dialer{"work": ch} }}
	reg.Started()
	ctx, d := reg.Dial(context.Background(), "desktop", user, dest)
	chain.TellChain(ctx, "work")
	tr := chain.TraceFrom(ctx)
	tr.Hop(0, hop1.Addr(), 3*time.Millisecond)
	tr.Hop(1, exitA.Addr(), 9*time.Millisecond)
	tr.Path([]string{hop1.Addr(), exitA.Addr()})
	c := d.Connected()
	c.Add(0, 1234)
	c.Add(1, 56789)
	ctx, d = reg.Dial(context.Background(), "desktop", user, dest)
	chain.TellChain(ctx, "work")
	d.Failed(&chain.HopError{Index: 1, Addr: exitB.Addr(), Err: io.ErrUnexpectedEOF})
	return reg
}

func get(t *testing.T, h http.Handler, path string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", "http://"+addr+path, nil)
	for k, v := range header {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// TestRefusesOtherHostsAndOrigins: DNS rebinding (a foreign Host) and
// requests sent by another web page (Origin, Sec-Fetch-Site) get 403, on
// the page and the metrics alike; our own names and numbers pass.
func TestRefusesOtherHostsAndOrigins(t *testing.T) {
	h := (&Server{Stats: registry(t)}).Handler(addr)
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"own address", nil, 200},
		{"localhost", map[string]string{"Host": "localhost:9080"}, 200},
		{"LOCALHOST", map[string]string{"Host": "LOCALHOST:9080"}, 200},
		{"ipv6 loopback", map[string]string{"Host": "[::1]:9080"}, 200},
		{"same origin", map[string]string{"Origin": "http://127.0.0.1:9080", "Sec-Fetch-Site": "same-origin"}, 200},
		{"rebound name", map[string]string{"Host": "attacker.example:9080"}, 403},
		{"other port", map[string]string{"Host": "127.0.0.1:80"}, 403},
		{"no port", map[string]string{"Host": "localhost"}, 403},
		{"other origin", map[string]string{"Origin": "https://attacker.example"}, 403},
		{"null origin", map[string]string{"Origin": "null"}, 403},
		{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
	} {
		for _, path := range []string{"/", "/metrics"} {
			t.Run(tc.name+path, func(t *testing.T) {
				w := get(t, h, path, tc.header)
				if w.Code != tc.want {
					t.Fatalf("%s with %v: %d, want %d: %s", path, tc.header, w.Code, tc.want, w.Body)
				}
				if w.Code == 403 && strings.Contains(w.Body.String(), dest) {
					t.Error("a refusal shows a destination")
				}
			})
		}
	}
}

// TestPage: a strict CSP with a nonce its one style sheet carries, no
// script, a meta refresh, the chain's hops coloured by health with
// their latency, and the live connection with its destination.
func TestPage(t *testing.T) {
	w := get(t, (&Server{Stats: registry(t), PID: 42}).Handler(addr), "/", nil)
	csp := w.Header().Get("Content-Security-Policy")
	if !strings.HasPrefix(csp, "default-src 'none'; style-src 'nonce-") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	nonce := strings.TrimPrefix(strings.Fields(csp)[3], "'nonce-")
	nonce = strings.TrimSuffix(nonce, "';")
	body := w.Body.String()
	for _, want := range []string{
		`<style nonce="` + nonce + `">`,
		`<meta http-equiv="refresh" content="2">`,
		`<div class="box up" title="up">hop 1 <b>10.0.0.1:1080</b><small>up, 3.0 ms</small>`,
		`<div class="box up" title="up">exit <b>10.0.0.2:1080</b><small>up, 9.0 ms</small>`,
		`<div class="box down" title="down">exit <b>10.0.0.3:1080</b>`,
		`<td>10.0.0.1:1080 → 10.0.0.2:1080</td><td>` + dest + `</td><td class="n">1.2 KiB</td><td class="n">55.5 KiB</td>`,
		"last error: hop 2 (10.0.0.3:1080)",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("page has a script or a link to fetch:\n%s", body)
	}
}

// TestMetrics: the exposition parses, carries the counters and
// histograms per listener, chain and hop position, and no destination,
// user or address in any label or value.
func TestMetrics(t *testing.T) {
	w := get(t, (&Server{Stats: registry(t)}).Handler(addr), "/metrics", nil)
	text := w.Body.String()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, text)
	}
	for _, name := range []string{
		"veilchain_listener_connections_total", "veilchain_listener_connections_failed_total", "veilchain_listener_bytes_total",
		"veilchain_listener_dial_seconds", "veilchain_chain_connections_open", "veilchain_chain_dial_seconds",
		"veilchain_hop_connections_total", "veilchain_hop_handshake_seconds", "veilchain_hop_up", "veilchain_hop_latency_seconds",
	} {
		if families[name] == nil {
			t.Errorf("no %s in\n%s", name, text)
		}
	}
	allowed := []string{"listener", "chain", "position", "member", "direction"}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(allowed, l.GetName()) {
					t.Errorf("%s has label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
	if h := families["veilchain_hop_handshake_seconds"]; h != nil {
		for _, m := range h.GetMetric() {
			if m.GetHistogram().GetSampleCount() != 1 {
				t.Errorf("hop handshake histogram %v: want one sample per position", m)
			}
		}
	}
	for _, secret := range []string{dest, "secret-destination", user, "10.0.0."} {
		if strings.Contains(text, secret) {
			t.Errorf("%q in the metrics:\n%s", secret, text)
		}
	}
}

// TestGraph: known samples become the polylines' points (newest at the
// right edge, the peak at the top), with the rates beside them, in an
// inline SVG that needs nothing the CSP forbids.
func TestGraph(t *testing.T) {
	s := &Server{Stats: registry(t), Throughput: stats.Throughput{Len: 5, Step: time.Second}}
	t0 := time.Unix(1000, 0)
	for i, b := range [][2]int64{{0, 0}, {100, 200}, {100, 400}, {150, 500}} { // totals: up, down
		s.Throughput.Add(t0.Add(time.Duration(i)*time.Second), b[0], b[1])
	}
	// Samples (up, down): (100, 200), (0, 200), (50, 100); peak 200; five
	// slots 150 apart, the three samples in the last three.
	body := get(t, s.Handler(addr), "/", nil).Body.String()
	for _, want := range []string{
		`<svg class="graph" id="throughput" viewBox="0 0 600 100"`,
		`<polyline class="gdown" points="300,0 450,0 600,50"/>`,
		`<polyline class="gup" points="300,50 450,100 600,75"/>`,
		"down 100 B/s</span>, <span class=\"kup\">up 50 B/s</span> now; top of the scale 200 B/s",
		"throughput, last 5s",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "style=") {
		t.Error("an inline style attribute, which the CSP blocks")
	}
}

// TestServeSamplesAndStops: Serve samples the registry's totals into the
// graph, and Shutdown ends the sampler before it returns.
func TestServeSamplesAndStops(t *testing.T) {
	reg := &stats.Registry{}
	_, d := reg.Dial(context.Background(), "l", "", dest)
	d.Connected().Add(1, 4096)
	s := &Server{Stats: reg, Throughput: stats.Throughput{Step: 5 * time.Millisecond}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Throughput.Samples()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no samples after 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("Serve: %v", err)
	}
	goleak.VerifyNone(t) // the sampler has returned
	if got := s.Throughput.Samples(); got[0].Down != 0 || got[0].Up != 0 {
		t.Errorf("first sample %+v: the 4096 bytes from before Serve count in the baseline, not as a sample", got[0])
	}
}

// TestShutdownBeforeServe: a Shutdown that comes first leaves Serve
// nothing to serve.
func TestShutdownBeforeServe(t *testing.T) {
	s := &Server{Stats: &stats.Registry{}}
	s.Shutdown(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln); err != http.ErrServerClosed {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

// TestExitAddress: Serve asks the echo service through each chain with
// hops (the very *chain.Chain, never directly nor through a direct
// chain), once in its first round, with a bounded context; the answers
// show per chain in Status and on the page, a failure with its error.
func TestExitAddress(t *testing.T) {
	work := &chain.Chain{Hops: []chain.Hop{&chain.SOCKS5{Address: "10.0.0.1:1080"}}}
	broken := &chain.Chain{Hops: []chain.Hop{&chain.SOCKS5{Address: "10.0.0.9:1080"}}}
	reg := &stats.Registry{Chains: func() map[string]chain.Dialer {
		return map[string]chain.Dialer{"work": work, "broken": broken, "home": &net.Dialer{}, "empty": &chain.Chain{}}
	}}
	var mu sync.Mutex
	var asked []chain.Dialer
	all := make(chan struct{})
	s := &Server{Stats: reg, ExitEcho: func(ctx context.Context, through chain.Dialer) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, through)
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > exitTimeout {
			t.Errorf("asked with no bound: %v %v", dl, ok)
		}
		if len(asked) == 2 {
			close(all)
		}
		if through == broken {
			return "", errors.New("echo said 502")
		}
		return "203.0.113.7", nil
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatal("the echo service was not asked through both chains")
	}
	// Wait for the second answer to be recorded.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		st := reg.Status()
		if slices.ContainsFunc(st.Chains, func(c stats.ChainStatus) bool { return c.Name == "work" && c.Exit != nil }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("work's exit never recorded")
		}
	}
	body := get(t, s.Handler(addr), "/", nil).Body.String()
	s.Shutdown(context.Background())
	<-served

	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 2 || asked[0] != broken || asked[1] != work {
		t.Errorf("asked through %v, want broken then work, once each in a minute", asked)
	}
	for _, c := range reg.Status().Chains {
		switch c.Name {
		case "work":
			if c.Exit == nil || c.Exit.Addr != "203.0.113.7" || c.Exit.Error != "" || c.Exit.At.IsZero() {
				t.Errorf("work's exit: %+v", c.Exit)
			}
		case "broken":
			if c.Exit == nil || c.Exit.Addr != "" || c.Exit.Error != "echo said 502" {
				t.Errorf("broken's exit: %+v", c.Exit)
			}
		default:
			if c.Exit != nil {
				t.Errorf("%s's exit: %+v, want none", c.Name, c.Exit)
			}
		}
	}
	for _, want := range []string{
		"exit address: <b>203.0.113.7</b>",
		`exit address: unknown <span class="err">(last ask failed: echo said 502)</span>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
}

// With Auth (a status address off loopback), the page and the metrics
// ask for a login, and only the right one gets them.
func TestAuth(t *testing.T) {
	const addr = "127.0.0.1:9080"
	s := &Server{Stats: registry(t), Auth: func(_, u, p string) bool { return u == "alice" && p == "pw" }}
	h := s.Handler(addr)
	for _, path := range []string{"/", "/metrics"} {
		if w := get(t, h, path, nil); w.Code != http.StatusUnauthorized || !strings.Contains(w.Header().Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s without a login: %d %q, want 401 asking for Basic", path, w.Code, w.Header().Get("WWW-Authenticate"))
		}
		wrong := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:guess"))
		if w := get(t, h, path, map[string]string{"Authorization": wrong}); w.Code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong password: %d, want 401", path, w.Code)
		}
		right := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:pw"))
		if w := get(t, h, path, map[string]string{"Authorization": right}); w.Code != http.StatusOK {
			t.Errorf("%s with the right login: %d, want 200", path, w.Code)
		}
	}
}
