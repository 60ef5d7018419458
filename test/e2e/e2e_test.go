//go:build linux

// Package e2e proves veilchain's privacy invariants on a small network of
// Linux network namespaces (198.18.0.0/24 only) with real clients (curl,
// proxychains4, ssh + nc) and real hops (veilchain serve, dante).
//
// Needs root; skips otherwise, and fails instead when
// VEILCHAIN_E2E_REQUIRED=1 (CI).
package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veilchain/veilchain/internal/testnet"
)

const (
	destName = "dest.test"
	hop1IP   = "198.18.0.11"
	exitIP   = "198.18.0.12"
	destIP   = "198.18.0.13"
	clientIP = "198.18.0.10"
	// exitPass is the exit's password on the chains the capture test
	// watches: long enough to be found in a capture if it crosses hop 1.
	exitPass = "exit-pass-5f3a9c"
)

// suite is the running network and the programs on it.
type suite struct {
	net                *network
	client, hop1, exit *host
	dest, dnsc, dnse   *host
	dnscProc, dnseProc *proc
	destProc           *proc
	hop1Serve          *proc
	bin, dir           string
	hop1ServeArgs      []string
}

func TestPrivacyInvariants(t *testing.T) {
	if os.Geteuid() != 0 {
		testnet.SkipOrFail(t, "network namespaces need root")
	}
	for _, p := range []string{"ip", "nft", "curl", "danted", "tinyproxy", "proxychains4", "sshd", "ssh", "ssh-keygen", "nc", "sha256sum", "dig"} {
		if _, err := exec.LookPath(p); err != nil {
			testnet.SkipOrFail(t, "%s not installed", p)
		}
	}
	begin := time.Now()
	s := setup(t)
	t.Logf("network and servers up in %v", time.Since(begin).Round(time.Millisecond))

	// Every chain: serve→serve, serve→dante, dante→serve, and an HTTP
	// CONNECT exit (serve→tinyproxy).
	for _, ch := range []struct {
		name        string
		socks, http string
	}{
		{"serve-serve", "127.0.0.1:1080", "127.0.0.1:8118"},
		{"serve-dante", "127.0.0.1:1081", "127.0.0.1:8119"},
		{"dante-serve", "127.0.0.1:1082", "127.0.0.1:8120"},
		{"serve-tinyproxy", "127.0.0.1:1083", "127.0.0.1:8121"},
		{"layered serve-serve", "127.0.0.1:1084", "127.0.0.1:8122"},
	} {
		t.Run(ch.name, func(t *testing.T) { s.checkChain(t, ch.socks, ch.http) })
	}
	t.Run("layered-capture", s.checkCapture)
	t.Run("dns-front-end", s.checkDNS)
	t.Run("proxychains4", s.checkProxychains)
	t.Run("ssh", s.checkSSH)
	t.Run("bulk", s.checkBulk)
	t.Run("hop1-down", s.checkHopDown)

	// Over the whole suite: the client's own resolver heard nothing, and
	// the client sent packets to hop 1 only.
	if q := s.dnscProc.seen(); len(q) != 0 {
		t.Errorf("the client's resolver received %d queries, want 0: %+v", len(q), q)
	}
	toHop1, other := s.counters(t)
	if toHop1 == 0 || other != 0 {
		t.Errorf("client namespace sent %d packets to hop 1 and %d elsewhere, want >0 and 0:\n%s",
			toHop1, other, run(t, "ip", "netns", "exec", s.client.ns, "nft", "list", "table", "inet", "vc"))
	}
	t.Logf("suite took %v; the client namespace sent %d packets to hop 1, %d elsewhere", time.Since(begin).Round(time.Millisecond), toHop1, other)
}

func setup(t *testing.T) *suite {
	s := &suite{dir: t.TempDir()}
	s.net = newNetwork(t, []string{"client", "hop1", "exit", "dest", "dnsc", "dnse"},
		map[string]string{"client": "198.18.0.14", "exit": "198.18.0.15"})
	activeMu.Lock()
	active = s.net
	activeMu.Unlock()
	h := s.net.hosts
	s.client, s.hop1, s.exit, s.dest, s.dnsc, s.dnse = h["client"], h["hop1"], h["exit"], h["dest"], h["dnsc"], h["dnse"]

	s.bin = filepath.Join(s.dir, "veilchain")
	run(t, "go", "build", "-tags="+buildTags, "-o", s.bin, "../../cmd/veilchain")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	// Resolvers: the client's knows no test name and counts; the exit's
	// knows dest.test. The destination serves HTTP, HTTPS and SSH.
	s.dnscProc = startIn(t, s.dnsc, []string{"VC_E2E_HELPER=dns"}, self, s.dnsc.ip)
	s.dnseProc = startIn(t, s.dnse, []string{"VC_E2E_HELPER=dns"}, self, s.dnse.ip, destName+"="+destIP)
	s.destProc = startIn(t, s.dest, []string{"VC_E2E_HELPER=dest"}, self, destIP)
	for _, p := range []*proc{s.dnscProc, s.dnseProc, s.destProc} {
		p.waitReady(t)
	}
	s.startSSHD(t)

	// Hops: veilchain serve on :1080 and dante on :1081, on hop 1 and the
	// exit. Each serve takes TLS (socks5s) and, with --allow-plain, plain
	// SOCKS and HTTP on the same port.
	s.hop1ServeArgs = []string{"serve", "--listen", hop1IP + ":1080", "--allow-open", "--allow-plain",
		"--state-dir", filepath.Join(s.dir, "hop1-state"), "--log-format", "json"}
	s.hop1Serve = startIn(t, s.hop1, nil, s.bin, s.hop1ServeArgs...)
	exitServe := startIn(t, s.exit, nil, s.bin, "serve", "--listen", exitIP+":1080", "--user", "u:p", "--user", "alice:"+exitPass,
		"--allow-plain", "--state-dir", filepath.Join(s.dir, "exit-state"), "--log-format", "json")
	hop1Dante := s.startDante(t, s.hop1)
	exitDante := s.startDante(t, s.exit)
	exitTinyproxy := s.startTinyproxy(t, s.exit)
	waitListening(t, s.client, hop1IP+":1080", s.hop1Serve)
	waitListening(t, s.client, hop1IP+":1081", hop1Dante)
	waitListening(t, s.hop1, exitIP+":1080", exitServe)
	waitListening(t, s.hop1, exitIP+":1081", exitDante)
	waitListening(t, s.hop1, exitIP+":8888", exitTinyproxy)
	hop1Pin, exitPin := waitPin(t, s.hop1Serve), waitPin(t, exitServe)

	// The client: one veilchain run, a listener per chain.
	cfg := fmt.Sprintf(`log: {format: json}
dns: {mode: forward, upstream: "198.18.0.15:53"}
listeners:
  - {name: ss, socks: 127.0.0.1:1080, http: 127.0.0.1:8118, dns: 127.0.0.1:5353, chain: ss}
  - {name: sd, socks: 127.0.0.1:1081, http: 127.0.0.1:8119, chain: sd}
  - {name: ds, socks: 127.0.0.1:1082, http: 127.0.0.1:8120, chain: ds}
  - {name: sh, socks: 127.0.0.1:1083, http: 127.0.0.1:8121, chain: sh}
  - {name: ll, socks: 127.0.0.1:1084, http: 127.0.0.1:8122, chain: ll}
chains:
  ss: {hops: [socks5://%[1]s:1080, socks5://alice:%[3]s@%[2]s:1080]}
  ll: {hops: ["socks5s://%[1]s:1080?pin=%[4]s", "socks5s://alice:%[3]s@%[2]s:1080?pin=%[5]s"]}
  sd: {hops: [socks5://%[1]s:1080, socks5://%[2]s:1081]}
  ds: {hops: [socks5://%[1]s:1081, socks5://u:p@%[2]s:1080]}
  sh: {hops: [socks5://%[1]s:1080, http://u:p@%[2]s:8888]}
`, hop1IP, exitIP, exitPass, hop1Pin, exitPin)
	cfgFile := filepath.Join(s.dir, "client.yaml")
	os.WriteFile(cfgFile, []byte(cfg), 0o600)
	client := startIn(t, s.client, nil, s.bin, "run", "-c", cfgFile)
	for _, port := range []string{"1080", "1081", "1082", "1083", "1084", "8118", "8119", "8120", "8121", "8122", "5353"} {
		waitListening(t, s.client, "127.0.0.1:"+port, client)
	}
	// A second front end whose DNS hands out fake addresses (198.19/16,
	// away from the test network) for clients that resolve locally.
	fakeCfg := fmt.Sprintf(`log: {format: json}
dns: {mode: fake-ip, upstream: "198.18.0.15:53", fake_ipv4: 198.19.0.0/16}
listeners:
  - {name: fk, socks: 127.0.0.1:1090, http: "", dns: 127.0.0.1:5354, chain: ss}
chains:
  ss: {hops: [socks5://%[1]s:1080, socks5://u:p@%[2]s:1080]}
`, hop1IP, exitIP)
	fakeFile := filepath.Join(s.dir, "fake.yaml")
	os.WriteFile(fakeFile, []byte(fakeCfg), 0o600)
	fake := startIn(t, s.client, nil, s.bin, "run", "-c", fakeFile)
	waitListening(t, s.client, "127.0.0.1:1090", fake)
	waitListening(t, s.client, "127.0.0.1:5354", fake)

	// Count what leaves the client namespace from here on.
	ruleset := fmt.Sprintf(`table inet vc {
	chain out {
		type filter hook output priority 0; policy accept;
		oifname "lo" accept
		ip daddr %s counter accept
		counter
	}
}`, hop1IP)
	rules := filepath.Join(s.dir, "vc.nft")
	os.WriteFile(rules, []byte(ruleset), 0o600)
	run(t, "ip", "netns", "exec", s.client.ns, "nft", "-f", rules)
	return s
}

func (s *suite) startDante(t *testing.T, h *host) *proc {
	conf := filepath.Join(s.dir, "danted-"+h.name+".conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`logoutput: stderr
internal: %s port = 1081
external: eth0
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }
socks pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }
`, h.ip)), 0o644)
	return startIn(t, h, nil, "danted", "-f", conf, "-p", filepath.Join(s.dir, "danted-"+h.name+".pid"))
}

// startTinyproxy runs an HTTP CONNECT proxy (with Basic auth) on h:8888.
func (s *suite) startTinyproxy(t *testing.T, h *host) *proc {
	conf := filepath.Join(s.dir, "tinyproxy-"+h.name+".conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("Port 8888\nListen %s\nTimeout 30\nAllow 198.18.0.0/24\nMaxClients 50\n"+
		"LogLevel Error\nDisableViaHeader Yes\nBasicAuth u p\nUser nobody\nGroup nogroup\n", h.ip)), 0o644)
	return startIn(t, h, nil, "tinyproxy", "-d", "-c", conf)
}

func (s *suite) startSSHD(t *testing.T) {
	for _, k := range []string{"hostkey", "clientkey"} {
		run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(s.dir, k))
	}
	pub, _ := os.ReadFile(filepath.Join(s.dir, "clientkey.pub"))
	os.WriteFile(filepath.Join(s.dir, "authorized_keys"), pub, 0o600)
	conf := filepath.Join(s.dir, "sshd_config")
	os.WriteFile(conf, []byte(fmt.Sprintf(`ListenAddress %s:22
HostKey %[2]s/hostkey
PidFile %[2]s/sshd.pid
AuthorizedKeysFile %[2]s/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
`, destIP, s.dir)), 0o600)
	os.MkdirAll("/run/sshd", 0o755)
	p := startIn(t, s.dest, nil, "/usr/sbin/sshd", "-D", "-e", "-f", conf)
	waitListening(t, s.dest, destIP+":22", p)
}

// clientRun runs a command in the client namespace and returns its
// combined output and error.
func (s *suite) clientRun(name string, args ...string) (string, error) {
	out, err := s.client.cmd(name, args...).CombinedOutput()
	return string(out), err
}

// requests returns the destination's requests from index from on.
func (s *suite) requests(from int) []event {
	all := s.destProc.seen()
	if from > len(all) {
		return nil
	}
	return all[from:]
}

var identifying = []string{"X-Forwarded-For", "Forwarded", "Via", "X-Real-Ip", "Client-Ip", "True-Client-Ip", "From", "X-Forwarded-Host", "Proxy-Connection"}

func (s *suite) checkChain(t *testing.T, socksAddr, httpAddr string) {
	before := len(s.destProc.seen())
	leaky := []string{"-H", "X-Forwarded-For: " + clientIP, "-H", "Forwarded: for=" + clientIP, "-H", "Via: 1.1 " + clientIP,
		"-H", "X-Real-IP: " + clientIP, "-H", "Client-IP: " + clientIP, "-H", "True-Client-IP: " + clientIP,
		"-H", "From: user@" + clientIP, "-H", "X-Forwarded-Host: me", "-H", "Proxy-Connection: keep-alive"}
	for _, c := range []struct {
		what string
		args []string
	}{
		{"curl --socks5-hostname", []string{"--socks5-hostname", socksAddr, "http://" + destName + "/"}},
		{"curl -x http, http://", append([]string{"-x", "http://" + httpAddr, "http://" + destName + "/"}, leaky...)},
		{"curl -x http, https://", []string{"-k", "-x", "http://" + httpAddr, "https://" + destName + "/"}},
	} {
		out, err := s.clientRun("curl", append([]string{"-sS", "--max-time", "20"}, c.args...)...)
		if err != nil || !strings.HasPrefix(out, "peer "+exitIP+":") {
			t.Errorf("%s: %q, %v: want the destination to see the exit %s", c.what, out, err, exitIP)
		}
	}
	reqs := s.requests(before)
	if len(reqs) != 3 {
		t.Fatalf("destination got %d requests, want 3: %+v", len(reqs), reqs)
	}
	for _, r := range reqs {
		if !strings.HasPrefix(r.Peer, exitIP+":") {
			t.Errorf("destination saw peer %s, want the exit %s", r.Peer, exitIP)
		}
		b, _ := json.Marshal(r.Headers)
		if strings.Contains(string(b), clientIP) {
			t.Errorf("destination received the client's address in %s", b)
		}
		for _, h := range identifying {
			if _, ok := r.Headers[h]; ok {
				t.Errorf("destination received identifying header %s: %s", h, b)
			}
		}
	}
}

// checkDNS: the DNS front ends answer through the chain (forward) or
// with fake addresses that clients which resolve locally then connect to
// (curl --socks4 sends only an address; curl --socks5 with a resolved
// name too); the exit's resolver does the resolving.
func (s *suite) checkDNS(t *testing.T) {
	before := len(s.dnseProc.seen())
	for _, proto := range []string{"+notcp", "+tcp"} {
		out, err := s.clientRun("dig", "@127.0.0.1", "-p", "5353", proto, "+short", "+time=10", "+tries=1", destName, "A")
		if err != nil || strings.TrimSpace(out) != destIP {
			t.Errorf("forward mode (%s): %q, %v: want %s", proto, out, err, destIP)
		}
	}
	if n := len(s.dnseProc.seen()) - before; n < 1 {
		t.Errorf("the exit's resolver got %d queries, want the forwarded one", n)
	}
	out, err := s.clientRun("dig", "@127.0.0.1", "-p", "5354", "+short", "+time=5", "+tries=1", destName, "A")
	fakeIP := strings.TrimSpace(out)
	if err != nil || !strings.HasPrefix(fakeIP, "198.19.") {
		t.Fatalf("fake-ip mode: %q, %v: want an address in 198.19.0.0/16", out, err)
	}
	for _, args := range [][]string{
		{"--socks4", "127.0.0.1:1090", "-H", "Host: " + destName, "http://" + fakeIP + "/"},
		{"--socks5", "127.0.0.1:1090", "--resolve", destName + ":80:" + fakeIP, "http://" + destName + "/"},
	} {
		out, err := s.clientRun("curl", append([]string{"-sS", "--max-time", "20"}, args...)...)
		if err != nil || !strings.HasPrefix(out, "peer "+exitIP+":") {
			t.Errorf("curl %v to the fake address: %q, %v", args[:2], out, err)
		}
	}
	// An address from the fake range that was never handed out is refused.
	if out, err := s.clientRun("curl", "-sS", "--max-time", "10", "--socks4", "127.0.0.1:1090", "http://198.19.250.250/"); err == nil {
		t.Errorf("an unmapped fake address went through: %q", out)
	}
}

func (s *suite) checkProxychains(t *testing.T) {
	conf := filepath.Join(s.dir, "proxychains.conf")
	os.WriteFile(conf, []byte("strict_chain\nproxy_dns\nremote_dns_subnet 224\ntcp_read_time_out 15000\ntcp_connect_time_out 8000\n[ProxyList]\nsocks5 127.0.0.1 1080\n"), 0o644)
	out, err := s.clientRun("proxychains4", "-q", "-f", conf, "curl", "-sS", "--max-time", "20", "http://"+destName+"/")
	if err != nil || !strings.HasPrefix(out, "peer "+exitIP+":") {
		t.Fatalf("proxychains4 curl: %q, %v", out, err)
	}
}

func (s *suite) checkSSH(t *testing.T) {
	out, err := s.clientRun("ssh", "-F", "/dev/null", "-i", filepath.Join(s.dir, "clientkey"),
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-o", "ConnectTimeout=20", "-o", "ProxyCommand=nc -X 5 -x 127.0.0.1:1080 %h %p",
		"root@"+destName, "echo hello from $(cat /proc/sys/kernel/hostname) via $SSH_CLIENT")
	if err != nil || !strings.Contains(out, "hello from") || !strings.Contains(out, "via "+exitIP+" ") {
		t.Fatalf("ssh through veilchain: %q, %v: want a command run, seen from the exit %s", out, err, exitIP)
	}
}

func (s *suite) checkBulk(t *testing.T) {
	const down, up = 256 << 20, 64 << 20
	begin := time.Now()
	out, err := s.clientRun("sh", "-c", fmt.Sprintf("curl -sS --max-time 120 --socks5-hostname 127.0.0.1:1080 'http://%s/big?n=%d' | sha256sum", destName, down))
	if want := streamSum(down); err != nil || !strings.HasPrefix(out, want) {
		t.Errorf("256 MiB download: sha256 %q (%v), want %s", out, err, want)
	}
	t.Logf("256 MiB down in %v", time.Since(begin).Round(time.Millisecond))

	file := filepath.Join(s.dir, "upload")
	f, _ := os.Create(file)
	writeStream(f, up)
	f.Close()
	begin = time.Now()
	out, err = s.clientRun("curl", "-sS", "--max-time", "120", "-x", "http://127.0.0.1:8118", "--data-binary", "@"+file, "http://"+destName+"/upload")
	if want := fmt.Sprintf("%d %s", up, streamSum(up)); err != nil || strings.TrimSpace(out) != want {
		t.Errorf("64 MiB upload: destination got %q (%v), want %s", out, err, want)
	}
	t.Logf("64 MiB up in %v", time.Since(begin).Round(time.Millisecond))
}

func writeStream(f *os.File, n int64) {
	buf := make([]byte, 1<<20)
	r := testStream()
	for n > 0 {
		k := min(int64(len(buf)), n)
		r.Read(buf[:k])
		f.Write(buf[:k])
		n -= k
	}
}

func (s *suite) checkHopDown(t *testing.T) {
	s.hop1Serve.stop()
	reqsBefore, dnsBefore := len(s.destProc.seen()), len(s.dnseProc.seen())
	out, err := s.clientRun("curl", "-sS", "--max-time", "20", "--socks5-hostname", "127.0.0.1:1080", "http://"+destName+"/")
	if err == nil || !strings.Contains(out, "SOCKS") {
		t.Errorf("with hop 1 down, curl --socks5-hostname: %q, %v: want a SOCKS error", out, err)
	}
	out, _ = s.clientRun("curl", "-s", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", "-x", "http://127.0.0.1:8118", "http://"+destName+"/")
	if out != "502" {
		t.Errorf("with hop 1 down, curl -x: status %q, want 502", out)
	}
	if n := len(s.destProc.seen()) - reqsBefore; n != 0 {
		t.Errorf("with hop 1 down, the destination got %d requests", n)
	}
	if n := len(s.dnseProc.seen()) - dnsBefore; n != 0 {
		t.Errorf("with hop 1 down, the exit's resolver got %d queries", n)
	}

	// Back up: the same veilchain run works again.
	s.hop1Serve = startIn(t, s.hop1, nil, s.bin, s.hop1ServeArgs...)
	waitListening(t, s.hop1, hop1IP+":1080", s.hop1Serve)
	out, err = s.clientRun("curl", "-sS", "--max-time", "20", "--socks5-hostname", "127.0.0.1:1080", "http://"+destName+"/")
	if err != nil || !strings.HasPrefix(out, "peer "+exitIP+":") {
		t.Errorf("hop 1 restarted: %q, %v", out, err)
	}
}

// counters reads the client namespace's packet counters: to hop 1, and
// to anywhere else but loopback.
func (s *suite) counters(t *testing.T) (toHop1, other int) {
	out := run(t, "ip", "netns", "exec", s.client.ns, "nft", "-j", "list", "table", "inet", "vc")
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Expr []map[string]json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j: %v\n%s", err, out)
	}
	var counts []int
	for _, item := range doc.Nftables {
		if item.Rule == nil {
			continue
		}
		for _, e := range item.Rule.Expr {
			if raw, ok := e["counter"]; ok {
				var c struct{ Packets int }
				json.Unmarshal(raw, &c)
				counts = append(counts, c.Packets)
			}
		}
	}
	if len(counts) != 2 {
		t.Fatalf("expected 2 counters in:\n%s", out)
	}
	return counts[0], counts[1]
}

// waitPin returns the pin from the hop URL a serve prints at start.
func waitPin(t *testing.T, p *proc) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(p.log(), "\n") {
			if u, ok := strings.CutPrefix(line, "socks5s://"); ok {
				if _, pin, ok := strings.Cut(u, "?pin="); ok {
					return pin
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%v printed no hop URL:\n%s", p.cmd.Args, p.log())
	return ""
}

// checkCapture records every byte crossing hop 1's interface while curl
// fetches a plain-HTTP URL with a unique path and User-Agent, through the
// layered chain (TLS to hop 1, TLS to the exit inside it) and through the
// plain one. Through the layered chain, the capture holds neither the
// destination's name, nor the path, nor the exit's password, nor the
// User-Agent; through the plain chain (the positive control that proves
// the detector works) it holds all four.
func (s *suite) checkCapture(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		testnet.SkipOrFail(t, "tcpdump not installed")
	}
	for _, c := range []struct {
		name      string
		socks     string
		http      string
		wantFound bool
	}{
		{"layered", "127.0.0.1:1084", "127.0.0.1:8122", false},
		{"plain (control)", "127.0.0.1:1080", "127.0.0.1:8118", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			secret := fmt.Sprintf("%x", time.Now().UnixNano())
			path, ua := "/private-path-"+secret, "vc-agent-"+secret
			pcap := filepath.Join(s.dir, "hop1-"+secret+".pcap")
			dump := startIn(t, s.hop1, nil, "tcpdump", "-i", "eth0", "--immediate-mode", "-U", "-s", "0", "-w", pcap, "tcp")
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(dump.log(), "listening on") && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			for _, args := range [][]string{
				{"--socks5-hostname", c.socks, "-A", ua, "http://" + destName + path},
				{"-x", "http://" + c.http, "-A", ua, "http://" + destName + path},
			} {
				out, err := s.clientRun("curl", append([]string{"-sS", "--max-time", "20"}, args...)...)
				if err != nil || !strings.HasPrefix(out, "peer "+exitIP+":") {
					t.Fatalf("curl %q: %q, %v", args, out, err)
				}
			}
			time.Sleep(200 * time.Millisecond) // the last ACKs and FINs
			dump.cmd.Process.Signal(os.Interrupt)
			<-dump.done
			captured, err := os.ReadFile(pcap)
			if err != nil || len(captured) < 1000 {
				t.Fatalf("capture: %d bytes, %v\n%s", len(captured), err, dump.log())
			}
			for _, needle := range []string{destName, path, exitPass, ua} {
				if found := strings.Contains(string(captured), needle); found != c.wantFound {
					t.Errorf("%q in the bytes crossing hop 1: %v, want %v", needle, found, c.wantFound)
				}
			}
		})
	}
}
