//go:build linux

package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veilchain/veilchain/resolver"
)

// The test binary doubles as the helper servers that run inside the
// namespaces: `VC_E2E_HELPER=dns|dest e2e.test ARGS`.
func TestMain(m *testing.M) {
	switch os.Getenv("VC_E2E_HELPER") {
	case "dns":
		helperDNS(os.Args[1], os.Args[2:])
		return
	case "dest":
		helperDest(os.Args[1])
		return
	}
	// An interrupted run leaves nothing behind: the next run sweeps, and
	// a signal ends this one through the same teardown.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		activeMu.Lock()
		if active != nil {
			active.teardown()
		}
		activeMu.Unlock()
		os.Exit(2)
	}()
	os.Exit(m.Run())
}

var (
	activeMu sync.Mutex
	active   *network
)

// event is one line a helper prints: a DNS query or an HTTP request seen.
type event struct {
	Kind    string              `json:"kind"` // "query" or "request"
	Name    string              `json:"name,omitempty"`
	Peer    string              `json:"peer,omitempty"`
	Path    string              `json:"path,omitempty"`
	Headers map[string][]string `json:"headers,omitempty"`
}

var emitMu sync.Mutex

func emit(e event) {
	b, _ := json.Marshal(e)
	emitMu.Lock()
	defer emitMu.Unlock()
	os.Stdout.Write(append(b, '\n'))
}

// helperDNS answers the given name=ip records (NXDOMAIN for the rest) on
// addr:53, UDP and TCP, and prints every query.
func helperDNS(addr string, records []string) {
	z := &resolver.Zone{
		Records: map[string]netip.Addr{},
		OnQuery: func(name string) { emit(event{Kind: "query", Name: name}) },
	}
	for _, r := range records {
		name, ip, _ := strings.Cut(r, "=")
		z.Records[name] = netip.MustParseAddr(ip)
	}
	if _, err := z.Listen(net.JoinHostPort(addr, "53")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	emit(event{Kind: "ready"})
	select {}
}

// helperDest serves HTTP on addr:80 and HTTPS on addr:443 and prints every
// request it gets. /big?n=N sends N bytes of the test stream; /upload
// answers with the sha256 of the body.
func helperDest(addr string) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		emit(event{Kind: "request", Peer: r.RemoteAddr, Path: r.URL.Path, Headers: r.Header})
		switch r.URL.Path {
		case "/big":
			n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			io.CopyN(w, testStream(), n)
		case "/upload":
			sum := sha256.New()
			n, _ := io.Copy(sum, r.Body)
			fmt.Fprintf(w, "%d %s\n", n, hex.EncodeToString(sum.Sum(nil)))
		default:
			fmt.Fprintf(w, "peer %s\n", r.RemoteAddr)
		}
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "80"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go (&http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
	tlsLn, err := net.Listen("tcp", net.JoinHostPort(addr, "443"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ts := httptest.NewUnstartedServer(h)
	ts.Listener.Close()
	ts.Listener = tlsLn
	ts.StartTLS()
	emit(event{Kind: "ready"})
	select {}
}

// testStream is the deterministic byte stream of /big and of uploads.
func testStream() io.Reader {
	return rand.NewChaCha8([32]byte{'v', 'e', 'i', 'l'})
}

// streamSum is the sha256 of the first n bytes of testStream.
func streamSum(n int64) string {
	h := sha256.New()
	io.CopyN(h, testStream(), n)
	return hex.EncodeToString(h.Sum(nil))
}

// proc is a program running in a namespace; helpers' events are collected.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	events []event
	output strings.Builder
	done   chan struct{}
	ready  chan struct{}
}

// startIn runs a command in h's namespace until the test ends, collecting
// helper events from its stdout and everything else for failure messages.
func startIn(t *testing.T, h *host, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: h.cmd(name, args...), done: make(chan struct{}), ready: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	stdout, _ := p.cmd.StdoutPipe()
	p.cmd.Stderr = &lockedWriter{p: p}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s in %s: %v", name, h.name, err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var once sync.Once
		for sc.Scan() {
			var e event
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Kind != "" {
				if e.Kind == "ready" {
					once.Do(func() { close(p.ready) })
					continue
				}
				p.mu.Lock()
				p.events = append(p.events, e)
				p.mu.Unlock()
			} else {
				p.mu.Lock()
				p.output.WriteString(sc.Text() + "\n")
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *proc) stop() {
	p.cmd.Process.Kill()
	<-p.done
	p.cmd.Wait()
}

type lockedWriter struct{ p *proc }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.output.Write(b)
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

func (p *proc) seen() []event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]event(nil), p.events...)
}

func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-p.ready:
	case <-p.done:
		t.Fatalf("%v exited before it was ready:\n%s", p.cmd.Args, p.log())
	case <-time.After(15 * time.Second):
		t.Fatalf("%v not ready:\n%s", p.cmd.Args, p.log())
	}
}

// waitListening waits until addr accepts connections from h.
func waitListening(t *testing.T, h *host, addr string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if h.cmd("nc", "-z", "-w", "1", strings.Split(addr, ":")[0], strings.Split(addr, ":")[1]).Run() == nil {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%v exited:\n%s", p.cmd.Args, p.log())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s not listening:\n%s", addr, p.log())
}
