package main

import (
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/veilchain/veilchain/configs"
	"github.com/veilchain/veilchain/internal/testnet"
	"github.com/veilchain/veilchain/policy"
)

// pacConfig is policyConfig with direct rules around the others, so that
// DIRECT answers have something to get wrong: a direct rule after a block
// rule that covers part of it, a direct CIDR that holds the fake-ip
// range, a direct glob with a [class] (not translated), a direct rule
// for one user, and a rule for another listener.
func pacConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	block := filepath.Join(dir, "block.txt")
	os.WriteFile(block, []byte("blocked.lan.example\n0.0.0.0 tracker.lan.example\n10.9.0.0/16\n"), 0o600)
	cfg := `users:
  alice: "$2a$10$abcdefghijklmnopqrstuuKxS4bEGYbX4kwc8o3v6b3PXYoJvA9i2"
listeners:
  - {name: app-a, socks: 127.0.0.1:1080, http: 127.0.0.1:8118, dns: 127.0.0.1:5353, chain: a}
  - {name: app-b, mixed: 127.0.0.1:1081, chain: a}
chains:
  a: {hops: [socks5://127.0.0.1:9001]}
rules:
  - {name: ads, suffixes: [.ads.example], block: true}
  - {name: secret-lan, domains: [vault.lan.example], block: true}
  - {name: web-only, suffixes: [.web.example], ports: [443], chain: a}
  - {name: lan, suffixes: [.lan.example], globs: ["*.LOCAL", "printer-?.home"], direct: true}
  - {name: nets, cidrs: [10.0.0.0/8, 198.0.0.0/8, "fd00::/8", "2001:db8::/32"], direct: true}
  - {name: classes, globs: ["host[0-9].example"], direct: true}
  - {name: alice-direct, users: [alice], suffixes: [.alice.example], direct: true}
  - {name: b-only, listeners: [app-b], suffixes: [.b-direct.example], direct: true}
  - {name: web-port, suffixes: [.web.example], direct: true}
block_lists: [` + block + `]
`
	file := filepath.Join(dir, "pac.yaml")
	os.WriteFile(file, []byte(cfg), 0o600)
	return file
}

// The file's shape: only the listener's proxies and DIRECT, DIRECT only
// as a direct rule's answer, no function that resolves a name, no
// fake-ip range, and the PROXIES answer last.
func TestPACText(t *testing.T) {
	cfg, err := configs.Load(pacConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	pac, err := makePAC(cfg, "app-a", "127.0.0.1:1080", "127.0.0.1:8118")
	if err != nil {
		t.Fatal(err)
	}
	text := string(pac)
	for _, want := range []string{`var PROXIES = "SOCKS5 127.0.0.1:1080; PROXY 127.0.0.1:8118";`, `var REFUSED = "PROXY 127.0.0.1:8118; SOCKS5 127.0.0.1:1080";`,
		"  return PROXIES;\n}\n", `// rule 4 "lan": direct: leaves WITHOUT the chain`, "catch (e) { return PROXIES; }"} {
		if !strings.Contains(text, want) {
			t.Errorf("PAC lacks %q:\n%s", want, text)
		}
	}
	for _, bad := range []string{"dnsResolve", "isInNet", "isResolvable", "myIpAddress", "dnsDomainIs", "198,18,", "b-direct", "SOCKS "} {
		if strings.Contains(text, bad) {
			t.Errorf("PAC has %q:\n%s", bad, text)
		}
	}
	code := regexp.MustCompile(`(?m)^\s*//.*$`).ReplaceAllString(text, "")
	if n := strings.Count(code, "DIRECT"); n != strings.Count(code, "return DIRECT_;")+2 { // the var and its value
		t.Errorf("DIRECT appears %d times in the code, outside direct rules:\n%s", n, text)
	}
	// Rule 7 (alice-direct) is direct for one user: the proxy decides.
	if !regexp.MustCompile(`alice.example.*return PROXIES;`).MatchString(text) {
		t.Errorf("a per-user direct rule answers DIRECT:\n%s", text)
	}
	mixed, _ := makePAC(cfg, "app-b", "127.0.0.1:1081", "127.0.0.1:1081")
	if !strings.Contains(string(mixed), `"SOCKS5 127.0.0.1:1081; PROXY 127.0.0.1:1081"`) || !strings.Contains(string(mixed), "b-direct") {
		t.Errorf("app-b's PAC:\n%s", mixed)
	}
}

func TestSubtractPrefix(t *testing.T) {
	for _, tt := range []struct {
		p, f string
		want []string
	}{
		{"10.0.0.0/8", "198.18.0.0/15", []string{"10.0.0.0/8"}},
		{"198.18.0.0/16", "198.18.0.0/15", nil},
		{"198.0.0.0/13", "198.4.0.0/14", []string{"198.0.0.0/14"}},
		{"198.0.0.0/8", "198.18.0.0/15", []string{"198.0.0.0/12", "198.16.0.0/15", "198.20.0.0/14", "198.24.0.0/13", "198.32.0.0/11", "198.64.0.0/10", "198.128.0.0/9"}},
		{"fd00::/8", "fd00:7665:696c::/48", nil}, // checked by count below
		{"::/0", "198.18.0.0/15", []string{"::/0"}},
	} {
		var got []string
		for _, p := range subtractPrefix(netip.MustParsePrefix(tt.p), netip.MustParsePrefix(tt.f)) {
			got = append(got, p.String())
			if p.Overlaps(netip.MustParsePrefix(tt.f)) {
				t.Errorf("%s - %s: %s overlaps what was taken out", tt.p, tt.f, p)
			}
		}
		if tt.p == "fd00::/8" {
			if len(got) != 48-8 {
				t.Errorf("%s - %s: %d prefixes, want 40", tt.p, tt.f, len(got))
			}
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s - %s = %q, want %q", tt.p, tt.f, got, tt.want)
		}
	}
}

// TestPACAgreesWithPolicy evaluates the file in a real JS engine (node)
// for many destinations, and compares each answer with the policy's own
// decision (policy.Router.Decide, as the front ends make it): DIRECT
// exactly where a direct rule decides without depending on the user, the
// listener's proxies everywhere else; never DIRECT for anything the
// policy would carry or refuse.
func TestPACAgreesWithPolicy(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testnet.SkipOrFail(t, "node (a JS engine, to evaluate the PAC file) not installed: %v", err)
	}
	cfgFile := pacConfig(t)
	cfg, err := configs.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	pac, err := makePAC(cfg, "app-a", "127.0.0.1:1080", "127.0.0.1:8118")
	if err != nil {
		t.Fatal(err)
	}
	type query struct {
		URL, Host string
		Want      string // "" means: as policy decides
	}
	var qs []query
	add := func(url, host, want string) { qs = append(qs, query{url, host, want}) }
	for _, h := range []string{"www.example.com", "x.ads.example", "ads.example", "vault.lan.example", "nas.lan.example", "lan.example",
		"blocked.lan.example", "a.blocked.lan.example", "tracker.lan.example", "notlan.example", "box.local", "BOX.Local.",
		"printer-1.home", "printer-12.home", "host1.example", "x.alice.example", "x.b-direct.example", "a.web.example",
		"10.1.2.3", "10.9.1.1", "11.0.0.1", "198.18.0.5", "198.19.255.255", "198.20.0.1", "198.17.0.1",
		"::ffff:10.1.2.3", "10.1.2.3.", "fd00::1%eth0", "fd00::1", "fd00:7665:696c::5", "fd01::1", "2001:db8::1", "2001:db9::1", "[2001:db8::2]", "::1", "0.0.0.0", "lan.example."} {
		add("http://"+h+"/", h, "")
		add("https://"+h+":8443/", h, "")
	}
	add("https://a.web.example/", "a.web.example", "PROXIES") // rule 3: port 443 goes to the chain
	add("http://a.web.example/", "a.web.example", "DIRECT")   // port 80: rule 9, direct
	add("ftp://a.web.example/", "a.web.example", "DIRECT")
	add("gopher://a.web.example/", "a.web.example", "PROXIES") // a port the file cannot tell: rule 3 taken to match
	add("http://nas.lan.example/", "nas.lan.example", "DIRECT")
	add("http://198.18.0.5/", "198.18.0.5", "PROXIES") // a fake address: the proxy knows its name
	add("http://host1.example/", "host1.example", "PROXIES")
	add("http://x.alice.example/", "x.alice.example", "PROXIES")
	add("http://bücher.lan.example/", "bücher.lan.example", "PROXIES") // not punycode: left to the proxies, which go direct

	script := string(pac) + `
var qs = JSON.parse(require("fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(qs.map(function (q) { return FindProxyForURL(q.URL, q.Host); })));
`
	file := filepath.Join(t.TempDir(), "pac.js")
	os.WriteFile(file, []byte(script), 0o600)
	in, _ := json.Marshal(qs)
	cmd := exec.Command(node, file)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var answers []string
	if err := json.Unmarshal(out, &answers); err != nil || len(answers) != len(qs) {
		t.Fatalf("node answered %s (%v)", out, err)
	}
	b, err := build(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &policy.Router{}
	r.Update(b.chains, b.defaults, b.direct, b.rules, b.block)
	const proxies = "SOCKS5 127.0.0.1:1080; PROXY 127.0.0.1:8118"
	const refused = "PROXY 127.0.0.1:8118; SOCKS5 127.0.0.1:1080"
	fake := netip.MustParsePrefix("198.18.0.0/15")
	fake6 := netip.MustParsePrefix("fd00:7665:696c::/48")
	for i, q := range qs {
		got := answers[i]
		host := strings.Trim(q.Host, "[]") // as a front end gets it: policy canonicalizes
		port := "80"
		switch {
		case strings.HasPrefix(q.URL, "https://") && strings.Contains(q.URL, ":8443"):
			port = "8443"
		case strings.HasPrefix(q.URL, "https://"):
			port = "443"
		case strings.HasPrefix(q.URL, "ftp://"):
			port = "21"
		case strings.HasPrefix(q.URL, "gopher://"):
			port = "70"
		}
		a, by, err := r.Decide(policy.Client{Listener: "app-a"}, joinHostPort(host, port))
		if err != nil {
			t.Fatal(err)
		}
		ip, isIP := netip.ParseAddr(host)
		isFake := isIP == nil && (fake.Contains(ip.Unmap()) || fake6.Contains(ip))
		want := q.Want
		if want == "" {
			switch {
			case isFake:
				want = "PROXIES" // the running process decides on the name behind it
			case a.Direct && !strings.Contains(by, "alice") && !strings.Contains(by, "classes"):
				want = "DIRECT"
			case a.Block:
				want = "REFUSED"
			default:
				want = "PROXIES"
			}
		}
		wantText := map[string]string{"DIRECT": "DIRECT", "PROXIES": proxies, "REFUSED": refused}[want]
		if want == "REFUSED" && got == proxies {
			wantText = proxies // a rule the file takes to lead to the proxies: both refuse
		}
		if got != wantText {
			t.Errorf("FindProxyForURL(%q, %q) = %q, want %s (policy: %v by %s)", q.URL, q.Host, got, want, a, by)
		}
		if got == "DIRECT" && (!a.Direct || isFake) {
			t.Errorf("LEAK: %s %s answered DIRECT, and the policy says %v (%s)", q.URL, q.Host, a, by)
		}
	}
}

func joinHostPort(h, p string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]:" + p
	}
	return h + ":" + p
}
