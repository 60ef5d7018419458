//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// oneWay is the delay each link adds in each direction.
const oneWay = 20 * time.Millisecond

// TestTimeToFirstByte measures, on links that each delay every packet by
// 20 ms one way (client→hop1→hop2→destination), how many one-way delays
// pass between curl's start and the first byte of the HTTP response,
// through a veilchain front end and two `veilchain serve` hops, per
// handshake style. The floor is 12: a TCP handshake per link (6) and the
// request and response crossing all three links (6).
//
//	lock-step SOCKS5: every hop's greeting, request and reply in turn (24)
//	pipelined: each run of ?pipeline=1 hops gets its handshakes in one write (16)
//	early reply / plain HTTP: the client's request follows the handshakes at once (12)
//	layered (socks5s, TLS 1.3 to each hop): a TLS round trip per hop, to hop 2
//	  through hop 1; hop 2's hello follows hop 1's SOCKS flight unanswered (22)
//	layered, early reply: the request follows the exit's SOCKS flight at once (18)
//	SSH exit (OpenSSH sshd on hop 2) behind a SOCKS5 hop, its connection open:
//	  a channel open to hop 2, which connects to the destination first (6), and
//	  the request and response (6); the first stream also makes the SSH connection
func TestTimeToFirstByte(t *testing.T) {
	requireTUN(t)
	sweep()
	n := &network{hosts: map[string]*host{}}
	t.Cleanup(n.teardown)
	hosts := map[string]*host{}
	for role, ip := range map[string]string{"client": "198.18.1.1", "hop1": "198.18.1.2", "hop2": "198.18.2.2", "dest": "198.18.3.2"} {
		hosts[role] = &host{name: role, ns: nsPrefix + "dl-" + role, ip: ip}
		n.addNS(t, hosts[role].ns)
	}
	client, hop1, hop2, dest := hosts["client"], hosts["hop1"], hosts["hop2"], hosts["dest"]
	newDelayLine(t, "vcdl1", link{client.ns, hop1.ns, "198.18.1.1", "198.18.1.2"}, oneWay)
	newDelayLine(t, "vcdl2", link{hop1.ns, hop2.ns, "198.18.2.1", "198.18.2.2"}, oneWay)
	newDelayLine(t, "vcdl3", link{hop2.ns, dest.ns, "198.18.3.1", "198.18.3.2"}, oneWay)

	dir := t.TempDir()
	bin := filepath.Join(dir, "veilchain")
	run(t, "go", "build", "-tags="+buildTags, "-o", bin, "../../cmd/veilchain")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	destProc := startIn(t, dest, []string{"VC_E2E_HELPER=dest"}, self, dest.ip)
	destProc.waitReady(t)
	var pins []string
	for _, h := range []*host{hop1, hop2} {
		p := startIn(t, h, nil, bin, "serve", "--listen", h.ip+":1080", "--allow-open", "--allow-plain",
			"--state-dir", filepath.Join(dir, h.name), "--log-format", "json")
		waitListening(t, h, h.ip+":1080", p)
		pins = append(pins, waitPin(t, p))
	}
	sshHop := startSSHDIn(t, hop2, dir)
	// The test network is in 198.18.0.0/15, like the default fake-ip range.
	// The serves have no users, so they wait for a request only their
	// handshake timeout (10 s): prebuilt circuits are replaced at 8 s.
	cfg := fmt.Sprintf(`log: {format: json}
dns: {fake_ipv4: 198.19.255.0/24}
listeners:
  - {name: lk, socks: 127.0.0.1:1080, http: 127.0.0.1:8110, chain: lockstep}
  - {name: pp, socks: 127.0.0.1:1081, http: 127.0.0.1:8120, chain: pipelined}
  - {name: er, socks: 127.0.0.1:1082, http: "", chain: pipelined, early_reply: true}
  - {name: eh, socks: 127.0.0.1:1083, http: "", chain: http-exit, early_reply: true}
  - {name: lk1, socks: "", http: 127.0.0.1:8111, chain: lockstep}
  - {name: lk2, socks: "", http: 127.0.0.1:8112, chain: lockstep}
  - {name: pp1, socks: "", http: 127.0.0.1:8121, chain: pipelined}
  - {name: pp2, socks: "", http: 127.0.0.1:8122, chain: pipelined}
  - {name: ly, socks: 127.0.0.1:1084, http: "", chain: layered}
  - {name: le, socks: 127.0.0.1:1085, http: "", chain: layered, early_reply: true}
  - {name: ss, socks: 127.0.0.1:1086, http: "", chain: ssh-exit}
  - {name: bl, socks: 127.0.0.1:1087, http: "", chain: prebuilt-lockstep}
  - {name: be, socks: 127.0.0.1:1088, http: "", chain: prebuilt, early_reply: true}
  - {name: bh0, socks: "", http: 127.0.0.1:8130, chain: prebuilt}
  - {name: bh1, socks: "", http: 127.0.0.1:8131, chain: prebuilt}
  - {name: bh2, socks: "", http: 127.0.0.1:8132, chain: prebuilt}
  - {name: by, socks: 127.0.0.1:1089, http: "", chain: prebuilt-layered, early_reply: true}
chains:
  lockstep: {hops: [socks5://%[1]s:1080, socks5://%[2]s:1080]}
  pipelined: {hops: ["socks5://%[1]s:1080?pipeline=1", "socks5://%[2]s:1080?pipeline=1"]}
  http-exit: {hops: ["socks5://%[1]s:1080?pipeline=1", "http://%[2]s:1080?pipeline=1"]}
  layered: {hops: ["socks5s://%[1]s:1080?pin=%[3]s", "socks5s://%[2]s:1080?pin=%[4]s"]}
  ssh-exit: {hops: ["socks5://%[1]s:1080", "%[5]s"]}
  prebuilt-lockstep: {hops: [socks5://%[1]s:1080, socks5://%[2]s:1080], prebuild: 3, prebuild_idle: 8s}
  prebuilt: {hops: ["socks5://%[1]s:1080?pipeline=1", "socks5://%[2]s:1080?pipeline=1"], prebuild: 3, prebuild_idle: 8s}
  prebuilt-layered: {hops: ["socks5s://%[1]s:1080?pin=%[3]s", "socks5s://%[2]s:1080?pin=%[4]s"], prebuild: 3, prebuild_idle: 8s}
`, hop1.ip, hop2.ip, pins[0], pins[1], sshHop)
	cfgFile := filepath.Join(dir, "client.yaml")
	os.WriteFile(cfgFile, []byte(cfg), 0o600)
	front := startIn(t, client, nil, bin, "run", "-c", cfgFile)
	for _, port := range []string{"1080", "1081", "1082", "1083", "1084", "1085", "1086", "1087", "1088", "1089",
		"8110", "8111", "8112", "8120", "8121", "8122", "8130", "8131", "8132"} {
		waitListening(t, client, "127.0.0.1:"+port, front)
	}

	// A peer in the same network, for comparison only (VC_PEER_GLIDER=path
	// to a glider binary built beside ours; nothing of it is committed).
	glider := os.Getenv("VC_PEER_GLIDER")
	if glider != "" {
		for _, h := range []*host{hop1, hop2} {
			p := startIn(t, h, nil, glider, "-listen", "socks5://"+h.ip+":1090")
			waitListening(t, h, h.ip+":1090", p)
		}
		p := startIn(t, client, nil, glider, "-listen", "mixed://127.0.0.1:1095",
			"-forward", "socks5://"+hop1.ip+":1090,socks5://"+hop2.ip+":1090")
		waitListening(t, client, "127.0.0.1:1095", p)
	}

	url := "http://" + dest.ip + "/"
	// Expected counts with slack for processing (12-17%: the early-reply
	// bound, 14, is issue 9's target); lock-step also has a floor, so
	// that a delay line that delays nothing fails the test.
	// The HTTP front end pools its upstream connections, so each of its
	// runs goes to a listener of its own, and each run opens a chain.
	socks := func(port string) func(int) []string {
		return func(int) []string { return []string{"--socks5-hostname", "127.0.0.1:" + port} }
	}
	httpProxy := func(base int) func(int) []string {
		return func(run int) []string { return []string{"--proxy", "http://127.0.0.1:" + strconv.Itoa(base+run)} }
	}
	type ttfbCase struct {
		name     string
		proxy    func(run int) []string // curl's proxy options
		min, max float64
		prebuilt bool // give the chain a moment to rebuild its circuits first
	}
	cases := []ttfbCase{
		{"SOCKS5, lock-step", socks("1080"), 22, 27, false},
		{"HTTP proxy, lock-step", httpProxy(8110), 22, 27, false},
		{"SOCKS5, pipelined", socks("1081"), 14, 18, false},
		{"HTTP proxy, pipelined", httpProxy(8120), 11, 14, false},
		{"SOCKS5, pipelined, early reply", socks("1082"), 11, 14, false},
		{"same, exit is HTTP CONNECT", socks("1083"), 11, 14, false},
		{"SOCKS5, layered (TLS per hop)", socks("1084"), 20, 25, false},
		{"SOCKS5, layered, early reply", socks("1085"), 16, 21, false},
		{"SSH exit, connection open", socks("1086"), 11, 15, false}, // 12.1-13.6 measured: sshd adds up to ~1.5
		// Circuits built ahead (prebuild): only the exit's request is
		// left, 2 delays to the exit, its TCP handshake to the
		// destination (2), then the request and response (1 + 3). A
		// client that waits for the SOCKS reply first waits for the
		// exit's (2 more, and 3 for its request to cross all links): 12.
		{"prebuilt, lock-step", socks("1087"), 10, 14, true},
		{"prebuilt, early reply", socks("1088"), 7, 8.5, true},
		{"prebuilt, HTTP proxy", httpProxy(8130), 7, 8.5, true},
		{"prebuilt, layered, early reply", socks("1089"), 7, 8.5, true},
	}
	if glider != "" {
		cases = append(cases, ttfbCase{"glider (peer), SOCKS5", socks("1095"), 0, 100, false}) // reported, not judged
	}
	// The unit is the one-way delay as measured now, half a TCP connect
	// from the client to hop 1 (whose port also speaks HTTP), so that the
	// delay lines' timer slack on a loaded machine does not count as
	// round trips of ours.
	var connects []float64
	for range 3 {
		out, _ := client.cmd("curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{time_connect}", "http://"+hop1.ip+":1080/").Output()
		secs, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
		if err != nil || secs <= 0 {
			t.Fatalf("timing a connect to hop 1: %q, %v", out, err)
		}
		connects = append(connects, secs)
	}
	slices.Sort(connects)
	unit := connects[1] / 2
	t.Logf("one-way delay per link %v, measured %.1f ms; floor 12 delays", oneWay, unit*1000)
	if unit < oneWay.Seconds() {
		t.Fatalf("a connect to hop 1 took %.1f ms: the delay lines do not delay", connects[1]*1000)
	}
	// The SSH exit's first stream makes the SSH connection (reported,
	// not judged); the case above then measures streams over it.
	out, err := client.cmd("curl", "--socks5-hostname", "127.0.0.1:1086", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{time_starttransfer}", url).CombinedOutput()
	if secs, perr := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err != nil || perr != nil {
		t.Fatalf("SSH exit, first stream: curl %q, %v\n%s", out, err, front.log())
	} else {
		t.Logf("%-32s time to first byte %6.1f ms = %4.1f one-way delays", "SSH exit, new connection", secs*1000, secs/unit)
	}
	for _, c := range cases {
		var delays []float64
		for run := range 3 {
			if c.prebuilt {
				time.Sleep(time.Second) // the circuit the last run took is replaced
			}
			out, err := client.cmd("curl", append(c.proxy(run), "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code} %{time_starttransfer}", url)...).CombinedOutput()
			code, secs, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
			s, perr := strconv.ParseFloat(secs, 64)
			if err != nil || code != "200" || perr != nil {
				t.Fatalf("%s: curl %q, %v\n%s", c.name, out, err, front.log())
			}
			delays = append(delays, s/unit)
		}
		slices.Sort(delays)
		d := delays[1]
		t.Logf("%-32s time to first byte %6.1f ms = %4.1f one-way delays (runs: %.1f)", c.name, d*unit*1000, d, delays)
		// Judged by the fastest run: a busy machine only adds to a run,
		// while a round trip too many shows in every run.
		if best := delays[0]; best < c.min || best > c.max {
			t.Errorf("%s: %.1f delays at best, want %.0f to %.0f", c.name, best, c.min, c.max)
		}
	}
	// Each request reached the destination from the exit's address only.
	for _, e := range destProc.seen() {
		if e.Kind == "request" && !strings.HasPrefix(e.Peer, "198.18.3.1:") {
			t.Errorf("destination saw a request from %s, want only the exit 198.18.3.1", e.Peer)
		}
	}
}

// startSSHDIn runs OpenSSH's sshd on h's port 22 with a host key and a
// client key made here, and returns the ssh:// hop URL for it, pinned to
// its host key.
func startSSHDIn(t *testing.T, h *host, dir string) string {
	t.Helper()
	sdir := filepath.Join(dir, "sshd")
	os.MkdirAll(sdir, 0o700)
	for _, k := range []string{"hostkey", "clientkey"} {
		run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(sdir, k))
	}
	pub, _ := os.ReadFile(filepath.Join(sdir, "clientkey.pub"))
	os.WriteFile(filepath.Join(sdir, "authorized_keys"), pub, 0o600)
	hostPub, _ := os.ReadFile(filepath.Join(sdir, "hostkey.pub"))
	key, _, _, _, err := ssh.ParseAuthorizedKey(hostPub)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(sdir, "sshd_config")
	os.WriteFile(conf, fmt.Appendf(nil, "ListenAddress %s:22\nHostKey %[2]s/hostkey\nPidFile %[2]s/sshd.pid\n"+
		"AuthorizedKeysFile %[2]s/authorized_keys\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"+
		"KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n", h.ip, sdir), 0o600)
	os.MkdirAll("/run/sshd", 0o755)
	p := startIn(t, h, nil, "/usr/sbin/sshd", "-D", "-e", "-f", conf)
	waitListening(t, h, h.ip+":22", p)
	return fmt.Sprintf("ssh://root@%s:22?hostkey=%s&identity=%s", h.ip, ssh.FingerprintSHA256(key), filepath.Join(sdir, "clientkey"))
}
