package test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/internal/testnet"
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// veilchain builds the binary once per test run and returns its path.
func veilchain(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "veilchain-test-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "veilchain")
		out, err := exec.Command("go", "build", "-tags="+buildTags, "-o", binPath, "../cmd/veilchain").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("building veilchain: %v", buildErr)
	}
	return binPath
}

func removeBin()           { os.RemoveAll(binDir) }
func exitProcess(code int) { os.Exit(code) }

// proc is a running veilchain whose JSON log lines can be waited for.
type proc struct {
	cmd   *exec.Cmd
	lines chan map[string]any
	mu    sync.Mutex
	log   []string
	done  chan struct{}
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	// Each process its own config dir, so each serve has its own key.
	return startIn(t, t.TempDir(), args...)
}

// startIn is start with configHome as the user's config dir
// (XDG_CONFIG_HOME): where run looks for config.yaml without -c.
func startIn(t *testing.T, configHome string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(veilchain(t), args...), lines: make(chan map[string]any, 100), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+configHome)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log = append(p.log, sc.Text())
			p.mu.Unlock()
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				select {
				case p.lines <- m:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		p.cmd.Wait()
	})
	return p
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, "\n")
}

// waitFor returns the first log line with message msg.
func (p *proc) waitFor(t *testing.T, msg string) map[string]any {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case m := <-p.lines:
			if m["msg"] == msg {
				return m
			}
		case <-p.done:
			t.Fatalf("veilchain exited before logging %q:\n%s", msg, p.stderr())
		case <-timeout:
			t.Fatalf("no %q log line:\n%s", msg, p.stderr())
		}
	}
}

// startServes starts two `veilchain serve` hops as separate processes and
// returns their addresses; the exit needs user u:p, resolves names with
// its own DNS server, and sends from 127.0.0.2.
func startServes(t *testing.T) (hop1Addr, exitAddr string) {
	hop1Addr, exitAddr, _ = startServeProcs(t)
	return hop1Addr, exitAddr
}

func startServeProcs(t *testing.T) (hop1Addr, exitAddr string, procs []*proc) {
	t.Helper()
	_, dnsAddr := exitDNS(t)
	out := exitIP(t)
	exit := start(t, "serve", "--listen", "127.0.0.1:0", "--user", "u:p", "--allow-private",
		"--resolver", dnsAddr, "--outbound-ip", out.String(), "--log-format", "json")
	exitAddr = exit.waitFor(t, "serving hop")["addr"].(string)
	hop1 := start(t, "serve", "--listen", "127.0.0.1:0", "--allow-private", "--log-format", "json")
	hop1Addr = hop1.waitFor(t, "serving hop")["addr"].(string)
	return hop1Addr, exitAddr, []*proc{hop1, exit}
}

// chainOfServes adds a `veilchain run` front end through startServes' hops.
func chainOfServes(t *testing.T) (front string, run *proc) {
	t.Helper()
	front, _, run = frontEnds(t)
	return front, run
}

// frontEnds is chainOfServes with the HTTP front end's address too.
func frontEnds(t *testing.T) (socksAddr, httpAddr string, run *proc) {
	t.Helper()
	hop1, exit := startServes(t)
	run = start(t, "run", "--socks", "127.0.0.1:0", "--http", "127.0.0.1:0", "--hop", "socks5://"+hop1,
		"--hop", "socks5://u:p@"+exit, "--log-format", "json")
	socksAddr = run.waitFor(t, "SOCKS5 front end listening")["addr"].(string)
	httpAddr = run.waitFor(t, "HTTP proxy front end listening")["addr"].(string)
	return socksAddr, httpAddr, run
}

// curlGet fetches url through a SOCKS5 front end, the name sent as a name.
func curlGet(t *testing.T, front, url string) string {
	t.Helper()
	curl := requireProgram(t, "curl")
	out, err := exec.Command(curl, "-sS", "--max-time", "10", "--socks5-hostname", front, url).CombinedOutput()
	if err != nil {
		t.Fatalf("curl --socks5-hostname %s %s: %v\n%s", front, url, err, out)
	}
	return string(out)
}

func TestCurlThroughChainOfServes(t *testing.T) {
	curl := requireProgram(t, "curl")
	dest := newDestination(t)
	front, _ := chainOfServes(t)

	url := "http://" + destName + ":" + dest.port + "/"
	if out := curlGet(t, front, url); !strings.HasPrefix(out, "peer 127.0.0.2:") {
		t.Fatalf("destination answered %q, want it to have seen the exit 127.0.0.2", out)
	}
	// curl --socks5 resolves locally: this machine cannot resolve destName,
	// so it must fail before any byte reaches the chain.
	out, err := exec.Command(curl, "-sS", "--max-time", "10", "--socks5", front, url).CombinedOutput()
	if err == nil {
		t.Fatalf("curl --socks5 with a name only the exit knows succeeded: %s", out)
	}
	if n := len(dest.seenPeers()); n != 1 {
		t.Fatalf("destination saw %d requests, want 1", n)
	}
}

// TestRunFromConfigFile: listeners and chains come from YAML; a flag
// overrides the file's listen address.
func TestRunFromConfigFile(t *testing.T) {
	dest := newDestination(t)
	hop1, exit := startServes(t)
	file := filepath.Join(t.TempDir(), "veilchain.yaml")
	cfg := "log:\n  format: json\nlisteners:\n  - name: app\n    socks: 127.0.0.1:1\n    chain: two\n" +
		"chains:\n  two:\n    hops:\n      - socks5://" + hop1 + "\n      - socks5://u:p@" + exit + "\n"
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run := start(t, "run", "-c", file, "--socks", "127.0.0.1:0")
	line := run.waitFor(t, "SOCKS5 front end listening")
	if line["listener"] != "app" || line["chain"] != "two" {
		t.Fatalf("listening line %v: want listener app on chain two", line)
	}
	if out := curlGet(t, line["addr"].(string), "http://"+destName+":"+dest.port+"/"); !strings.HasPrefix(out, "peer 127.0.0.2:") {
		t.Fatalf("destination answered %q, want it to have seen the exit", out)
	}
}

// TestRunHopFlagWithEmptyChains: "chains:" with nothing under it, plus --hop.
func TestRunHopFlagWithEmptyChains(t *testing.T) {
	file := filepath.Join(t.TempDir(), "empty-chains.yaml")
	if err := os.WriteFile(file, []byte("log:\n  format: json\nchains:\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := start(t, "run", "-c", file, "--socks", "127.0.0.1:0", "--http", "", "--hop", "socks5://127.0.0.1:1")
	run.waitFor(t, "SOCKS5 front end listening")
}

// TestLogsNameHopsNotDestinations: at info level no process of the chain
// logs a destination, and a chain failure names the hop by position and
// address.
func TestLogsNameHopsNotDestinations(t *testing.T) {
	curl := requireProgram(t, "curl")
	dest := newDestination(t)
	hop1, exit, procs := startServeProcs(t)
	run := start(t, "run", "--socks", "127.0.0.1:0", "--http", "", "--hop", "socks5://"+hop1,
		"--hop", "socks5://u:p@"+exit, "--log-format", "json")
	front := run.waitFor(t, "SOCKS5 front end listening")["addr"].(string)
	procs = append(procs, run)

	curlGet(t, front, "http://"+destName+":"+dest.port+"/")
	out, err := exec.Command(curl, "-sS", "--max-time", "10", "--socks5-hostname", front, "http://unknown.veilchain.test/").CombinedOutput()
	if err == nil {
		t.Fatalf("request for an unknown name succeeded: %s", out)
	}
	line := run.waitFor(t, "chain failed")
	if line["hop"] != float64(2) || line["hop_addr"] != exit || line["reply"] != "host unreachable" {
		t.Fatalf("chain failure logged as %v: want hop 2 (%s), host unreachable", line, exit)
	}
	for _, p := range procs {
		for _, secret := range []string{"veilchain.test", "u:p"} {
			if log := p.stderr(); strings.Contains(log, secret) {
				t.Errorf("%s logs %q at info level:\n%s", p.cmd.Args[1], secret, log)
			}
		}
	}
}

func TestRunRefusesWithoutHops(t *testing.T) {
	out, err := exec.Command(veilchain(t), "run", "--socks", "127.0.0.1:0").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("run without hops: err = %v, want a non-zero exit\n%s", err, out)
	}
	for _, want := range []string{"no hops configured", "--hop socks5s://", "-c FILE", "veilchain init"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
}

func TestRunConfigErrorsNameTheLine(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.yaml")
	os.WriteFile(file, []byte("listeners:\n  - name: a\n    socks: 127.0.0.1:0\n    chain: main\nchains:\n  main:\n    hops:\n      - socks9://127.0.0.1:1\n"), 0o600)
	out, err := exec.Command(veilchain(t), "run", "-c", file).CombinedOutput()
	if err == nil || !strings.Contains(string(out), file+":8: chains.main.hops[0]") || !strings.Contains(string(out), `unsupported scheme "socks9"`) {
		t.Fatalf("err = %v, output:\n%s", err, out)
	}
}

func TestRefusesOpenNonLoopback(t *testing.T) {
	out, err := exec.Command(veilchain(t), "serve", "--listen", "0.0.0.0:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--user") {
		t.Fatalf("serve on 0.0.0.0 without auth: err = %v\n%s", err, out)
	}
	out, err = exec.Command(veilchain(t), "run", "--socks", "0.0.0.0:0", "--hop", "socks5://127.0.0.1:1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not a loopback address") {
		t.Fatalf("run on 0.0.0.0: err = %v\n%s", err, out)
	}
}

// TestGracefulShutdown: on SIGTERM, run stops accepting, lets a live
// connection finish, and exits 0.
func TestGracefulShutdown(t *testing.T) {
	dest := newDestination(t)
	front, run := chainOfServes(t)
	c := dialSOCKS(t, front, destName+":"+dest.port)
	c.SetDeadline(time.Now().Add(10 * time.Second))

	run.cmd.Process.Signal(syscall.SIGTERM)
	run.waitFor(t, "stopping: no new connections; live ones get a grace period")
	// A new connection is refused once the listener is closed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		nc, err := net.DialTimeout("tcp", front, time.Second)
		if err != nil {
			break
		}
		nc.Close()
		if time.Now().After(deadline) {
			t.Fatal("front end still accepting after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The live connection still carries a whole request and response.
	io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: d\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
	resp, err := io.ReadAll(c)
	if err != nil || !strings.HasSuffix(string(resp), "hello") {
		t.Fatalf("live connection after SIGTERM: %q, %v", resp, err)
	}
	c.Close()
	select {
	case <-run.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("run did not exit after its last connection closed:\n%s", run.stderr())
	}
	if err := run.cmd.Wait(); err != nil {
		t.Fatalf("run exited with %v, want 0:\n%s", err, run.stderr())
	}
}

// TestSecondSignalStopsAtOnce: a second SIGTERM does not wait for the grace period.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	dest := newDestination(t)
	front, run := chainOfServes(t)
	dialSOCKS(t, front, destName+":"+dest.port) // a live connection that would hold the grace period
	run.cmd.Process.Signal(syscall.SIGTERM)
	run.waitFor(t, "stopping: no new connections; live ones get a grace period")
	run.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-run.done:
	case <-time.After(5 * time.Second): // the grace period is 10 s
		t.Fatalf("run still waiting after a second SIGTERM:\n%s", run.stderr())
	}
}

func TestDemo(t *testing.T) {
	exitIP(t)
	// The demo shows the same thing whatever the links and the handshake
	// style: layered (the default), or plain (as the one-process bench
	// runs it); with --early-reply its front ends answer before the chain
	// is confirmed.
	for _, style := range []struct {
		name  string
		flags []string
		links string
	}{
		{"layered", nil, "TLS 1.3 to each hop, pinned"},
		{"layered, early reply", []string{"--early-reply"}, "TLS 1.3 to each hop, pinned"},
		{"plain lock-step", []string{"--plain"}, "plain SOCKS5"},
		{"plain pipelined", []string{"--plain", "--pipeline"}, "plain SOCKS5"},
		{"plain early reply", []string{"--plain", "--pipeline", "--early-reply"}, "plain SOCKS5"},
	} {
		t.Run(style.name, func(t *testing.T) {
			args := append([]string{"demo", "--once", "--socks", "127.0.0.1:0", "--http", "127.0.0.1:0"}, style.flags...)
			out, err := exec.Command(veilchain(t), args...).CombinedOutput()
			if err != nil {
				t.Fatalf("demo: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "Links:  "+style.links) {
				t.Errorf("demo does not say its links are %q:\n%s", style.links, out)
			}
			// Through SOCKS the client's headers arrive unchanged; through the
			// HTTP front end they are gone.
			socksPart, httpPart, ok := strings.Cut(string(out), "through http://")
			if !ok {
				t.Fatalf("demo made no request through the HTTP front end:\n%s", out)
			}
			for _, want := range []string{"peer address: 127.0.0.2:", "(the exit; the client is 127.0.0.1)", "X-Forwarded-For: 203.0.113.7"} {
				if !strings.Contains(socksPart, want) {
					t.Errorf("demo's SOCKS part lacks %q:\n%s", want, out)
				}
			}
			for _, want := range []string{"peer address: 127.0.0.2:", "User-Agent:", "only the exit's resolver knows dest.demo.test"} {
				if !strings.Contains(httpPart, want) {
					t.Errorf("demo's HTTP part lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(httpPart, "203.0.113.7") || strings.Contains(httpPart, "leaky-proxy") {
				t.Errorf("identifying headers reached the destination through the HTTP front end:\n%s", out)
			}
		})
	}
	out, err := exec.Command(veilchain(t), "demo", "--once", "--pipeline").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--pipeline needs --plain") {
		t.Errorf("demo --pipeline without --plain: %v\n%s", err, out)
	}
}

// TestMixedPort: one port serves SOCKS5, SOCKS4a and the HTTP proxy,
// each driven by curl.
func TestMixedPort(t *testing.T) {
	curl := requireProgram(t, "curl")
	dest := newDestination(t)
	hop1, exit := startServes(t)
	run := start(t, "run", "--socks", "", "--http", "", "--listen", "127.0.0.1:0", "--hop", "socks5://"+hop1,
		"--hop", "socks5://u:p@"+exit, "--log-format", "json")
	mixed := run.waitFor(t, "mixed SOCKS and HTTP front end listening")["addr"].(string)
	url := "http://" + destName + ":" + dest.port + "/"
	for _, args := range [][]string{
		{"--socks5-hostname", mixed},
		{"--socks4a", mixed},
		{"-x", "http://" + mixed},
		{"-x", "socks4a://" + mixed},
		{"--socks4", mixed}, // curl resolves: only the IP of the destination is sent
	} {
		u := url
		if args[0] == "--socks4" {
			u = "http://127.0.0.1:" + dest.port + "/"
		}
		out, err := exec.Command(curl, append([]string{"-sS", "--max-time", "10"}, append(args, u)...)...).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "peer 127.0.0.2:") {
			t.Errorf("curl %v: %q, %v", args, out, err)
		}
	}
}

// dialSOCKS opens a connection to addr through a SOCKS5 front end with an
// independent client (x/net/proxy), closed at the end of the test.
func dialSOCKS(t *testing.T, front, addr string) net.Conn {
	t.Helper()
	sd, err := proxy.SOCKS5("tcp", front, nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sd.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestServeIsEncryptedByDefault: serve with only --listen makes a key,
// prints a pinned socks5s:// URL that works as a hop, keeps the key
// across restarts (--print-url says the same), and a port that is not on
// loopback answers plain clients as an HTTPS server would, unless told
// --allow-plain. run warns about each plain link that leaves the machine.
func TestServeIsEncryptedByDefault(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "serve", "--listen", "127.0.0.1:0", "--state-dir", dir, "--allow-private", "--log-format", "json")
	first := p.waitFor(t, "serving hop")
	u := first["url"].(string)
	if !strings.HasPrefix(u, "socks5s://127.0.0.1:") || !strings.Contains(u, "?pin=sha256:") {
		t.Fatalf("hop URL %q", u)
	}
	if _, err := chain.ParseHop(u); err != nil {
		t.Fatalf("the printed URL does not parse: %v", err)
	}
	dest := newDestination(t)
	if body, err := getThrough(t, "localhost:"+dest.port, u); err != nil || !strings.HasPrefix(body, "peer ") {
		t.Fatalf("through the printed URL: %q, %v", body, err)
	}
	_, pin, _ := strings.Cut(u, "?pin=")
	out, err := exec.Command(veilchain(t), "serve", "--print-url", "--listen", "0.0.0.0:9001", "--user", "alice:pw", "--state-dir", dir).Output()
	if want := "socks5s://USER:PASSWORD@HOST:9001?pin=" + pin + "\n"; err != nil || string(out) != want {
		t.Fatalf("--print-url: %q, %v; want %q (the same key, no password printed)", out, err, want)
	}

	// Not on loopback: encrypted only. (It listens on all addresses, and
	// the test reaches it on 127.0.0.1 only.)
	enc := start(t, "serve", "--listen", "0.0.0.0:0", "--user", "u:p", "--state-dir", dir, "--log-format", "json")
	_, port, _ := net.SplitHostPort(enc.waitFor(t, "serving hop")["addr"].(string))
	addr := "127.0.0.1:" + port
	if got := testnet.RawExchange(t, addr, "\x05\x01\x02\x01\x01u\x01p\x05\x01\x00\x03\x01x\x00\x50", 500*time.Millisecond); got != "" {
		t.Errorf("a plain SOCKS client got %q, want a close (what a TLS server gives it)", got)
	}
	if got := testnet.RawExchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 500*time.Millisecond); got != "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n" {
		t.Errorf("a plain HTTP client got %q", got)
	}
	plain := start(t, "serve", "--listen", "0.0.0.0:0", "--user", "u:p", "--allow-plain", "--state-dir", dir, "--log-format", "json")
	if plain.waitFor(t, "plain SOCKS and HTTP are served on a non-loopback address (--allow-plain): their clients' credentials and destinations cross the network unencrypted") == nil {
		t.Fatal("no warning")
	}
	_, port, _ = net.SplitHostPort(plain.waitFor(t, "serving hop")["addr"].(string))
	if got := testnet.RawExchange(t, "127.0.0.1:"+port, "\x05\x01\x02\x01\x01u\x01p", 500*time.Millisecond); got != "\x05\x02\x01\x00<still open>" {
		t.Errorf("with --allow-plain a plain SOCKS client got %q, want method 2 and auth ok", got)
	}

	run := start(t, "run", "--socks", "127.0.0.1:0", "--http", "", "--log-format", "json",
		"--hop", "socks5://198.18.0.2:1080", "--hop", "socks5://alice:secret@198.18.0.3:1080")
	for _, w := range []string{
		"hop 1 (198.18.0.2:1080) is a plain link: hop 2's address crosses the network unencrypted; use socks5s:// with the pin its serve prints",
		"hop 2 (198.18.0.3:1080) is a plain link: hop 2's password and every destination name cross hop 1 unencrypted; use socks5s:// with the pin its serve prints",
	} {
		run.waitFor(t, w)
	}
}

// TestRunWarnsWhenTheFirstHopIsDown: a first hop that does not answer at
// start is warned about (with its address), and run starts anyway.
func TestRunWarnsWhenTheFirstHopIsDown(t *testing.T) {
	dead := closedPort(t)
	run := start(t, "run", "--socks", "127.0.0.1:0", "--http", "", "--log-format", "json", "--hop", "socks5://"+dead)
	run.waitFor(t, "SOCKS5 front end listening")
	if w := run.waitFor(t, "the first hop does not answer now: connections through it fail until it does"); w["hop_addr"] != dead {
		t.Errorf("warning names %v, want %s", w["hop_addr"], dead)
	}
}

// TestHashPasswordDoesNotEcho: on a terminal (script(1) gives it one) the
// password is read without echo, twice, and only the hash is printed.
func TestHashPasswordDoesNotEcho(t *testing.T) {
	script := requireProgram(t, "script")
	const pw = "Secr3t-x9"
	feed := fmt.Sprintf("sleep 0.5; printf '%s\\n'; sleep 0.3; printf '%s\\n'; sleep 0.5", pw, pw)
	cmd := exec.Command("sh", "-c", "("+feed+") | "+script+" -qec '"+veilchain(t)+" hash-password' /dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Contains(string(out), pw) || !strings.Contains(string(out), "again:") || !strings.Contains(string(out), "$2a$") {
		t.Fatalf("output %q: want two prompts and a hash, and the password nowhere", out)
	}
}
