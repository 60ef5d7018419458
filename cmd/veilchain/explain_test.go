package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/veilchain/veilchain/configs"
)

// policyConfig is the policy of test/policy_test.go's TestPolicy (two
// listeners with their own chains, a block rule, a rule for one
// listener, auth on the second) with more to explain: a pool, per-hop
// and per-chain timeouts, a layered exit with a password, a glob with
// ports, a direct CIDR rule, a user rule, a block list and a fake-ip DNS
// front end. It returns the config file's path.
func policyConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	block := filepath.Join(dir, "block.txt")
	if err := os.WriteFile(block, []byte("blocked.example\n10.9.0.0/16\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `users:
  alice: "$2a$10$abcdefghijklmnopqrstuuKxS4bEGYbX4kwc8o3v6b3PXYoJvA9i2"
listeners:
  - {name: app-a, socks: 127.0.0.1:1080, http: 127.0.0.1:8118, dns: 127.0.0.1:5353, chain: a}
  - {name: app-b, socks: 127.0.0.1:1081, chain: b, auth: true}
timeouts: {connect: 7s, handshake: 9s, tunnel_idle: 2m}
chains:
  a:
    hops:
      - socks5://127.0.0.1:9001
      - {pool: [socks5://u:pool-secret@127.0.0.1:9002, "http://127.0.0.1:3128?timeout=3s"], select: least-latency}
      - socks5s://bob:exit-secret@exit.example:443?pin=sha256:0SRu79h_KmHoroLP6kwxIMvyAWhsd29pRcOYfRhzbWA&timeout=5s
  b: {hops: [socks5://127.0.0.1:9003, socks5://127.0.0.1:9004], mode: random, length: 1, handshake_timeout: 4s, connect_timeout: 2s}
rules:
  - {name: ads, suffixes: [.ads.example], block: true}
  - {name: other-via-b, domains: [other.example], listeners: [app-a], chain: b}
  - {globs: ["*.corp.*"], ports: ["8000-8999"], chain: b}
  - {name: lan, cidrs: [192.168.0.0/16], direct: true}
  - {name: alice, users: [alice], chain: a}
block_lists: [` + block + `]
`
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestExplain(t *testing.T) {
	file := policyConfig(t)
	cfg, err := configs.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	block := cfg.BlockLists[0]
	for _, tt := range []struct {
		addr, listener, user string
		action, decidedBy    string
		rule                 *ruleRef
		blockList            string
		chain, mode          string
		hops                 []string // per position: URL, or pool members joined by " | "
		names, fakeIP        string   // parts of the texts
		timeouts             []string // "name value from", each a prefix of one
		note                 string
	}{
		{addr: "www.example.com:443", action: "chain", decidedBy: "default of listener app-a", chain: "a", mode: "strict",
			hops: []string{"socks5://127.0.0.1:9001", "socks5://u:xxxxx@127.0.0.1:9002 | http://127.0.0.1:3128?timeout=3s",
				"socks5s://bob:xxxxx@exit.example:443?pin=sha256:0SRu79h_KmHoroLP6kwxIMvyAWhsd29pRcOYfRhzbWA&timeout=5s"},
			names: "resolved by the exit; nothing on this machine", fakeIP: "no: a name",
			timeouts: []string{"connect 7s timeouts.connect", "handshake 9s timeouts.handshake", "tunnel idle 2m0s", "idle 1m0s"}},
		{addr: "X.Ads.Example.:80", action: "block", decidedBy: `rule 1 "ads"`, rule: &ruleRef{1, "ads"},
			names: "not resolved anywhere"},
		{addr: "other.example:80", action: "chain", decidedBy: `rule 2 "other-via-b"`, rule: &ruleRef{2, "other-via-b"},
			chain: "b", mode: "random", hops: []string{"socks5://127.0.0.1:9003", "socks5://127.0.0.1:9004"},
			timeouts: []string{"connect 2s chains.b.connect_timeout", "handshake 4s chains.b.handshake_timeout"}},
		// Rule 2 names app-a: on app-b the same name takes app-b's default.
		{addr: "other.example:80", listener: "app-b", action: "chain", decidedBy: "default of listener app-b", chain: "b"},
		{addr: "git.corp.example:8080", action: "chain", decidedBy: "rule 3", rule: &ruleRef{3, ""}, chain: "b"},
		{addr: "git.corp.example:443", action: "chain", decidedBy: "default of listener app-a", chain: "a"},
		{addr: "a.blocked.example:1", action: "block", decidedBy: "block list", blockList: block},
		{addr: "10.9.1.1:1", action: "block", decidedBy: "block list", blockList: block, fakeIP: "no"},
		{addr: "192.168.1.1:22", action: "direct", decidedBy: `rule 4 "lan"`, rule: &ruleRef{4, "lan"},
			names: "nothing to resolve; this machine connects", timeouts: []string{"connect 7s"}, note: "WITHOUT any proxy"},
		// A name never matches a CIDR rule: it is not resolved to decide.
		{addr: "lan.example:22", action: "chain", decidedBy: "default of listener app-a", note: "never match a name"},
		{addr: "[2001:db8::1]:443", action: "chain", chain: "a", names: "an address: nothing to resolve; the exit connects"},
		{addr: "198.18.0.5:80", action: "fake-ip", fakeIP: "yes: 198.18.0.5 is in the fake-ip range 198.18.0.0/15"},
		{addr: "[fd00:7665:696c::9]:80", action: "fake-ip", fakeIP: "explain cannot see that mapping"},
		{addr: "a.test:443", listener: "app-b", user: "alice", action: "chain", decidedBy: `rule 5 "alice"`, rule: &ruleRef{5, "alice"}, chain: "a"},
		{addr: "a.test:443", listener: "app-b", action: "chain", decidedBy: "default of listener app-b", chain: "b"},
		// app-a has no auth: its clients have no user, whatever --user says.
		{addr: "a.test:443", listener: "app-a", user: "alice", action: "chain", decidedBy: "default of listener app-a", note: "has no auth"},
	} {
		t.Run(tt.listener+" "+tt.user+" "+tt.addr, func(t *testing.T) {
			e, err := explain(cfg, tt.listener, tt.user, tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			js, _ := json.Marshal(e)
			check := func(what, got, want string, exact bool) {
				t.Helper()
				if want != "" && (exact && got != want || !exact && !strings.Contains(got, want)) {
					t.Errorf("%s = %q, want %q\n%s", what, got, want, js)
				}
			}
			check("action", e.Action, tt.action, true)
			check("decided by", e.DecidedBy, tt.decidedBy, true)
			check("block list", e.BlockList, tt.blockList, true)
			check("names", e.Names, tt.names, false)
			check("fake ip", e.FakeIP, tt.fakeIP, false)
			check("notes", strings.Join(e.Notes, "\n"), tt.note, false)
			if tt.rule == nil && e.Rule != nil && tt.decidedBy != "" || tt.rule != nil && (e.Rule == nil || *e.Rule != *tt.rule) {
				t.Errorf("rule = %+v, want %+v", e.Rule, tt.rule)
			}
			if tt.chain != "" {
				if e.Chain == nil {
					t.Fatalf("no chain: %s", js)
				}
				check("chain", e.Chain.Name, tt.chain, true)
				check("mode", e.Chain.Mode, tt.mode, true)
			}
			if tt.hops != nil {
				var got []string
				for _, h := range e.Chain.Hops {
					got = append(got, h.URL+strings.Join(h.Pool, " | "))
				}
				if !slices.Equal(got, tt.hops) {
					t.Errorf("hops = %q, want %q", got, tt.hops)
				}
			}
			for _, want := range tt.timeouts {
				if !slices.ContainsFunc(e.Timeouts, func(o timeout) bool { return strings.HasPrefix(o.Name+" "+o.Value+" "+o.From, want) }) {
					t.Errorf("no timeout %q in %+v", want, e.Timeouts)
				}
			}
			if (tt.action == "block" || tt.action == "fake-ip") && e.Chain != nil {
				t.Errorf("a %s names a chain: %s", tt.action, js)
			}
			if strings.Contains(string(js), "secret") {
				t.Errorf("a password in the explanation: %s", js)
			}
		})
	}
}

// The per-hop handshake timeouts: the chain's, a hop's ?timeout=, and a
// pool's per member.
func TestExplainHopTimeouts(t *testing.T) {
	cfg, err := configs.Load(policyConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	e, err := explain(cfg, "", "", "www.example.com:443")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range e.Chain.Hops {
		got = append(got, h.Handshake)
	}
	want := []string{"9s", "9s, 3s (per member; ?timeout= where given)", "5s (?timeout=)"}
	if !slices.Equal(got, want) {
		t.Errorf("handshake timeouts %q, want %q", got, want)
	}
	if links := e.Chain.Hops[2].Link; !slices.Equal(links, []string{"encrypted (pinned)"}) {
		t.Errorf("exit link %q, want encrypted (pinned)", links)
	}
}

// The command: text and JSON, what it refuses, and no password printed.
func TestExplainCommand(t *testing.T) {
	file := policyConfig(t)
	out, err := runApp("explain", "-c", file, "www.example.com:443")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`decision        chain "a" (default of listener app-a)`, "hop 3 (exit)", "socks5://u:xxxxx@127.0.0.1:9002",
		"resolved by the exit", "timeout         connect 7s"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain printed:\n%s\nwant %q in it", out, want)
		}
	}
	out, err = runApp("explain", "-c", file, "--json", "x.ads.example:443")
	var e explanation
	if err != nil || json.Unmarshal([]byte(out), &e) != nil || e.Action != "block" || e.Rule == nil || e.Rule.Name != "ads" {
		t.Errorf("explain --json: %v\n%s", err, out)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"www.example.com"}, "want HOST:PORT"},
		{[]string{"www.example.com:0"}, "is not 1-65535"},
		{[]string{"a:1", "b:2"}, "explain takes one HOST:PORT"},
		{[]string{"--listener", "nope", "a:1"}, `no listener named "nope" (the config has app-a, app-b)`},
		{[]string{"--listener", "app-b", "--user", "bob", "a:1"}, `--user: the config's users has no "bob"`},
	} {
		out, err := runApp(append([]string{"explain", "-c", file}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("explain %q: %v\n%s\nwant an error with %q", tt.args, err, out, tt.want)
		}
	}
	for _, args := range [][]string{{"www.example.com:443"}, {"--json", "www.example.com:443"}} {
		out, _ := runApp(append([]string{"explain", "-c", file}, args...)...)
		if strings.Contains(out, "secret") {
			t.Errorf("explain %q printed a password:\n%s", args, out)
		}
	}
}
