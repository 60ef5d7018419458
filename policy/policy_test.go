package policy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/veilchain/veilchain/chain"
)

func mustRule(t *testing.T, r Rule) Rule {
	t.Helper()
	if err := r.Normalize(); err != nil {
		t.Fatal(err)
	}
	return r
}

func port(s string) PortRange {
	p, err := ParsePortRange(s)
	if err != nil {
		panic(err)
	}
	return p
}

func TestRuleMatching(t *testing.T) {
	tests := []struct {
		name   string
		rule   Rule
		addr   string
		client Client
		want   bool
	}{
		{"exact domain", Rule{Domains: []string{"Example.COM."}}, "example.com:443", Client{}, true},
		{"exact domain, trailing dot in the request", Rule{Domains: []string{"example.com"}}, "EXAMPLE.com.:443", Client{}, true},
		{"exact domain does not take subdomains", Rule{Domains: []string{"example.com"}}, "www.example.com:443", Client{}, false},
		{"suffix takes the apex", Rule{Suffixes: []string{".example.com"}}, "example.com:80", Client{}, true},
		{"suffix takes subdomains", Rule{Suffixes: []string{"example.com"}}, "a.b.example.com:80", Client{}, true},
		{"suffix is label-aligned", Rule{Suffixes: []string{".example.com"}}, "badexample.com:80", Client{}, false},
		{"glob", Rule{Globs: []string{"*.example.*"}}, "www.example.org:80", Client{}, true},
		{"glob misses", Rule{Globs: []string{"*.example.*"}}, "example.org:80", Client{}, false},
		{"IDN rule, punycode request", Rule{Domains: []string{"bücher.example"}}, "xn--bcher-kva.example:80", Client{}, true},
		{"IDN suffix", Rule{Suffixes: []string{".bücher.example"}}, "www.xn--bcher-kva.example:80", Client{}, true},
		{"underscore names", Rule{Suffixes: []string{".example.com"}}, "_dmarc.example.com:0", Client{}, true},
		{"CIDR v4", Rule{CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "10.1.2.3:22", Client{}, true},
		{"CIDR v6", Rule{CIDRs: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}}, "[2001:db8::5]:443", Client{}, true},
		{"CIDR v6 misses", Rule{CIDRs: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}}, "[2001:db9::5]:443", Client{}, false},
		{"CIDR takes a v4-mapped address", Rule{CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "[::ffff:10.0.0.1]:22", Client{}, true},
		{"CIDR never matches a name", Rule{CIDRs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}, "example.com:80", Client{}, false},
		{"domain never matches an address", Rule{Domains: []string{"1.2.3.4"}}, "1.2.3.4:80", Client{}, false},
		{"port", Rule{Ports: []PortRange{port("443")}}, "x.example:443", Client{}, true},
		{"port range", Rule{Ports: []PortRange{port("8000-8999")}}, "x.example:8080", Client{}, true},
		{"port range misses", Rule{Ports: []PortRange{port("8000-8999")}}, "x.example:9000", Client{}, false},
		{"listener", Rule{Listeners: []string{"app-b"}}, "x.example:80", Client{Listener: "app-b"}, true},
		{"listener misses", Rule{Listeners: []string{"app-b"}}, "x.example:80", Client{Listener: "app-a"}, false},
		{"user", Rule{Users: []string{"alice"}}, "x.example:80", Client{User: "alice"}, true},
		{"all fields must match", Rule{Suffixes: []string{".example.com"}, Ports: []PortRange{port("22")}}, "a.example.com:443", Client{}, false},
		{"empty rule matches all", Rule{}, "x.example:1", Client{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRule(t, tt.rule)
			d, err := parseDest(tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.matches(d, tt.client); got != tt.want {
				t.Errorf("rule %+v on %s by %+v = %v, want %v", tt.rule, tt.addr, tt.client, got, tt.want)
			}
		})
	}
}

// namedDialer records which chain was asked.
type namedDialer struct {
	name  string
	asked *[]string
}

func (d namedDialer) DialContext(_ context.Context, _, addr string) (net.Conn, error) {
	*d.asked = append(*d.asked, d.name+" "+addr)
	return nil, errors.New("test dialer")
}

func TestRouterFirstMatchWinsAndDefaults(t *testing.T) {
	var asked []string
	r := &Router{
		Chains:   map[string]chain.Dialer{"eu": namedDialer{"eu", &asked}, "tor": namedDialer{"tor", &asked}},
		Defaults: map[string]string{"app-a": "eu", "app-b": "tor"},
	}
	r.SetRules([]Rule{
		mustRule(t, Rule{Name: "ads", Suffixes: []string{".ads.example"}, Action: Action{Block: true}}),
		mustRule(t, Rule{Suffixes: []string{".onion-like.example"}, Action: Action{Chain: "tor"}}),
		mustRule(t, Rule{Suffixes: []string{".example"}, Action: Action{Chain: "eu"}}),
		mustRule(t, Rule{CIDRs: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}, Action: Action{Direct: true}}),
	}, nil)
	ctxA := WithClient(context.Background(), Client{Listener: "app-a"})
	ctxB := WithClient(context.Background(), Client{Listener: "app-b"})

	_, err := r.DialContext(ctxA, "tcp", "x.ads.example:443")
	if !errors.Is(err, chain.ErrBlocked) || !strings.Contains(err.Error(), `rule 1 "ads"`) {
		t.Errorf("blocked: err = %v, want ErrBlocked naming rule 1", err)
	}
	r.DialContext(ctxA, "tcp", "www.onion-like.example:80") // rule 2 before rule 3
	r.DialContext(ctxB, "tcp", "www.example:80")            // rule 3 over app-b's default
	r.DialContext(ctxA, "tcp", "other.test:80")             // app-a's default
	r.DialContext(ctxB, "tcp", "other.test:80")             // app-b's default
	want := []string{"tor www.onion-like.example:80", "eu www.example:80", "eu other.test:80", "tor other.test:80"}
	if len(asked) != len(want) {
		t.Fatalf("chains asked %q, want %q", asked, want)
	}
	for i := range want {
		if asked[i] != want[i] {
			t.Fatalf("chains asked %q, want %q", asked, want)
		}
	}
	// A direct rule without a Direct dialer is refused, not dialled.
	if _, err := r.DialContext(ctxA, "tcp", "192.168.1.1:80"); !errors.Is(err, chain.ErrBlocked) {
		t.Errorf("direct without Direct: err = %v, want ErrBlocked", err)
	}
	// A listener with no default chain is refused.
	if _, err := r.DialContext(context.Background(), "tcp", "other.test:80"); !errors.Is(err, chain.ErrBlocked) {
		t.Errorf("unknown listener: err = %v", err)
	}
}

func TestBlockLists(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "block.txt")
	os.WriteFile(file, []byte("# ads\nads.example\n0.0.0.0 tracker.example other.example # hosts-file line\n10.9.0.0/16\n2001:db8::1\n\n"), 0o644)
	b, err := LoadBlockLists(file)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"ads.example:443": true, "x.ADS.example.:443": true, "notads.example:443": false,
		"tracker.example:80": true, "other.example:80": true, "0.0.0.0:80": false,
		"10.9.1.1:80": true, "10.8.1.1:80": false, "[2001:db8::1]:80": true, "[2001:db8::2]:80": false,
	} {
		d, _ := parseDest(addr)
		if got := b.blocks(d); got != want {
			t.Errorf("blocks(%s) = %v, want %v", addr, got, want)
		}
	}
	os.WriteFile(file, []byte("two words here\n"), 0o644)
	if _, err := LoadBlockLists(file); err == nil || !strings.Contains(err.Error(), "block.txt:1") {
		t.Errorf("bad line: err = %v, want it to name file and line", err)
	}
}

func TestUsers(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	u, err := NewUsers(map[string]string{"alice": string(hash)})
	if err != nil {
		t.Fatal(err)
	}
	if !u.Authenticate("192.0.2.1:5000", "alice", "s3cret") {
		t.Fatal("right password refused")
	}
	if u.Authenticate("192.0.2.1:5001", "alice", "wrong") || u.Authenticate("192.0.2.1:5002", "bob", "s3cret") {
		t.Fatal("wrong password or unknown user accepted")
	}
	// Five failures from one source lock it out, even with the right password;
	// another source is unaffected.
	for range 5 {
		u.Authenticate("198.51.100.9:1", "alice", "guess")
	}
	if u.Authenticate("198.51.100.9:2", "alice", "s3cret") {
		t.Fatal("a source past its failure limit got in")
	}
	if !u.Authenticate("192.0.2.7:1", "alice", "s3cret") {
		t.Fatal("another source was locked out too")
	}
	u.Window = time.Millisecond
	time.Sleep(5 * time.Millisecond)
	if !u.Authenticate("198.51.100.9:3", "alice", "s3cret") {
		t.Fatal("still locked out after the window")
	}
	if _, err := NewUsers(map[string]string{"bob": "plaintext"}); err == nil {
		t.Fatal("a plain-text password was taken for a hash")
	}
}
