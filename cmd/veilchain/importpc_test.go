package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veilchain/veilchain/configs"
	"github.com/veilchain/veilchain/internal/testnet"
)

// importAndLoad imports a proxychains config and loads the result as
// veilchain would (`run -c`): the import is only right if it loads.
func importAndLoad(t *testing.T, conf string) (*configs.Config, string, []string) {
	t.Helper()
	out, warns, err := importProxychains("pc.conf", []byte(conf))
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	cfg, err := configs.Parse("imported.yaml", out)
	if err != nil {
		t.Fatalf("the imported config does not load: %v\n%s", err, out)
	}
	return cfg, string(out), warns
}

func hopURLs(cfg *configs.Config, name string) []string {
	var urls []string
	for _, h := range cfg.Chains[name].Hops {
		urls = append(urls, h.URLs()...)
	}
	return urls
}

func TestImportProxychains(t *testing.T) {
	for _, tt := range []struct {
		name, conf       string
		mode             string
		length           int
		hops             []string
		connect, hshake  time.Duration // 0: the default's
		fake             string        // dns.fake_ipv4; "": the default's
		rules            []string      // "cidr port" of each direct rule
		inOutput, noWarn []string
		warns            []string
	}{
		{name: "dynamic, auth, comments, CRLF",
			conf: "# a comment\r\ndynamic_chain\r\nquiet_mode\r\nproxy_dns_old\r\n[ProxyList]\r\n" +
				"socks5 192.0.2.1 1080 alice s3:cr@t/#?%\r\n\thttp\t198.51.100.2\t3128\tbob\thidden\r\nsocks4 192.0.2.3 1080 userid # the last\r\n",
			mode: "dynamic",
			hops: []string{"socks5://alice:s3%3Acr%40t%2F%23%3F%25@192.0.2.1:1080", "http://bob:hidden@198.51.100.2:3128", "socks4a://userid@192.0.2.3:1080"},
			inOutput: []string{"proxy_dns_old: veilchain always sends destination names down the chain", "passwords as that file had them",
				"line 6: socks5 192.0.2.1:1080 with user and password", "line 8: socks4 192.0.2.3:1080 with a user ID (socks4a"}},
		{name: "random with chain_len, names and IPv6",
			conf: "random_chain\nchain_len = 2\n[ProxyList]\nsocks5 hop.example 1080\nsocks5 [2001:db8::1] 1081\nhttp 2001:db8::2 8080\n",
			mode: "random", length: 2,
			hops:     []string{"socks5://hop.example:1080", "socks5://[2001:db8::1]:1081", "http://[2001:db8::2]:8080"},
			inOutput: []string{"The file has no proxy_dns, so proxychains resolved names on this machine"}},
		{name: "round robin, chain_len=1, the last chain type counts",
			conf: "strict_chain\nround_robin_chain\nchain_len=1\n[ProxyList]\nsocks5 192.0.2.1 1\nsocks5 192.0.2.2 2\n",
			mode: "round-robin", length: 1, hops: []string{"socks5://192.0.2.1:1", "socks5://192.0.2.2:2"},
			warns: []string{"pc.conf:2: round_robin_chain after strict_chain on line 1: the last one counts"}},
		{name: "random without chain_len takes proxychains' one",
			conf: "random_chain\n[ProxyList]\nsocks5 192.0.2.1 1\nsocks5 192.0.2.2 2\n", mode: "random", length: 1},
		{name: "no chain type: strict",
			conf: "[ProxyList]\nsocks5 192.0.2.1 1080\n", mode: "strict", inOutput: []string{"names no chain type: strict"}},
		{name: "timeouts, fake range, localnets",
			conf: "strict_chain\nproxy_dns\nremote_dns_subnet 10\ntcp_read_time_out 15000\ntcp_connect_time_out 8000\n" +
				"localnet 127.0.0.0/255.0.0.0\nlocalnet 192.168.1.0:80/255.255.255.0\nlocalnet 0.0.0.0:80/0.0.0.0\nlocalnet [::]:80/0\nlocalnet ::1/128\n" +
				"localnet 10.1.2.3/16\n[ProxyList]\nsocks5 192.0.2.1 1080\n",
			mode: "strict", connect: 8 * time.Second, hshake: 15 * time.Second, fake: "10.0.0.0/8",
			rules:    []string{"127.0.0.0/8 ", "192.168.1.0/24 80", "0.0.0.0/0 80", "::/0 80", "::1/128 ", "10.1.0.0/16 "},
			inOutput: []string{"leave this machine WITHOUT the chain", "name: localnet-line-7"}},
		{name: "unknown directives and dnat are reported, not dropped silently",
			conf:  "strict_chian\ndnat 1.1.1.1 1.1.1.2\nproxy_dns\n[ProxyList]\nsocks5 192.0.2.1 1080\n",
			mode:  "strict",
			warns: []string{`pc.conf:1: unknown directive "strict_chian": not imported`, "pc.conf:2: dnat is not supported"}},
		{name: "chain_len without random is reported",
			conf:  "strict_chain\nchain_len 1\n[ProxyList]\nsocks5 192.0.2.1 1080\n",
			mode:  "strict",
			warns: []string{"pc.conf:2: chain_len applies to random_chain and round_robin_chain only"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, out, warns := importAndLoad(t, tt.conf)
			def := configs.Default()
			ch := cfg.Chains["proxychains"]
			if cfg.Listeners[0].Chain != "proxychains" {
				t.Errorf("listener chain %q", cfg.Listeners[0].Chain)
			}
			if got := cmpOr(ch.Mode, "strict"); got != tt.mode {
				t.Errorf("mode %q, want %q", got, tt.mode)
			}
			if ch.Length != tt.length {
				t.Errorf("length %d, want %d", ch.Length, tt.length)
			}
			if tt.hops != nil && !slices.Equal(hopURLs(cfg, "proxychains"), tt.hops) {
				t.Errorf("hops %q, want %q", hopURLs(cfg, "proxychains"), tt.hops)
			}
			if want := cmpOr(tt.connect, def.Timeouts.Connect); cfg.Timeouts.Connect != want {
				t.Errorf("connect timeout %v, want %v", cfg.Timeouts.Connect, want)
			}
			if want := cmpOr(tt.hshake, def.Timeouts.Handshake); cfg.Timeouts.Handshake != want {
				t.Errorf("handshake timeout %v, want %v", cfg.Timeouts.Handshake, want)
			}
			if want := cmpOr(tt.fake, def.DNS.FakeIPv4); cfg.DNS.FakeIPv4 != want {
				t.Errorf("fake_ipv4 %q, want %q", cfg.DNS.FakeIPv4, want)
			}
			var rules []string
			for _, r := range cfg.Rules {
				if !r.Direct || len(r.CIDRs) != 1 {
					t.Errorf("rule %+v: want one CIDR, direct", r)
				}
				port := ""
				if len(r.Ports) > 0 {
					port = string(r.Ports[0])
				}
				rules = append(rules, r.CIDRs[0]+" "+port)
			}
			if !slices.Equal(rules, tt.rules) {
				t.Errorf("rules %q, want %q", rules, tt.rules)
			}
			for _, w := range tt.inOutput {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if len(warns) != len(tt.warns) || slices.ContainsFunc(tt.warns, func(w string) bool {
				return !strings.HasPrefix(warns[slices.Index(tt.warns, w)], w)
			}) {
				t.Errorf("warnings %q, want ones starting %q", warns, tt.warns)
			}
		})
	}
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

// What cannot be carried over stops the import, naming file and line.
func TestImportProxychainsRefuses(t *testing.T) {
	for _, tt := range []struct{ conf, want string }{
		{"[ProxyList]\nsocks5 192.0.2.1 1080\nraw 192.0.2.2 8080\n", "pc.conf:3: raw proxies (bytes forwarded to the proxy unchanged, no handshake) are not supported"},
		{"[ProxyList]\nsocks9 192.0.2.1 1080\n", `pc.conf:2: unknown proxy type "socks9"`},
		{"[ProxyList]\nsocks5 192.0.2.1 99999\n", `pc.conf:2: socks5 proxy: port "99999" is not 1-65535`},
		{"[ProxyList]\nsocks5 192.0.2.1\n", "pc.conf:2: want: TYPE HOST PORT [USER PASSWORD]"},
		{"[ProxyList]\nsocks5 bad/host 1080\n", `pc.conf:2: socks5 proxy: host "bad/host" is neither`},
		{"[ProxyList]\nsocks4 192.0.2.1 1080 user Zx9secret\n", "pc.conf:2: socks4 proxy: SOCKS4 has a user ID but no password"},
		{"strict_chain\n", "pc.conf: no proxies"},
		{"[ProxyList]\n", "pc.conf: no proxies"},
		{"random_chain\nchain_len 3\n[ProxyList]\nsocks5 192.0.2.1 1080\n", "pc.conf:2: chain_len 3 is more than the 1 proxies listed"},
		{"chain_len x\n[ProxyList]\nsocks5 192.0.2.1 1080\n", "pc.conf:1: chain_len: want a number"},
		{"tcp_read_time_out 0\n[ProxyList]\nsocks5 192.0.2.1 1080\n", "pc.conf:1: tcp_read_time_out: want a positive number of milliseconds"},
		{"remote_dns_subnet 300\n[ProxyList]\nsocks5 192.0.2.1 1080\n", "pc.conf:1: remote_dns_subnet: want the first byte"},
		{"localnet 10.0.0.0/255.0.255.0\n[ProxyList]\nsocks5 192.0.2.1 1080\n", `pc.conf:1: localnet: mask "255.0.255.0"`},
		{"localnet 10.0.0.0\n[ProxyList]\nsocks5 192.0.2.1 1080\n", "pc.conf:1: localnet: \"10.0.0.0\": want ADDRESS[:PORT]/MASK"},
		{"[Proxies]\n", `pc.conf:1: unknown section "[Proxies]"`},
	} {
		_, _, err := importProxychains("pc.conf", []byte(tt.conf))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.conf, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "Zx9secret") {
			t.Errorf("%q: the error repeats the password: %v", tt.conf, err)
		}
	}
}

// The proxychains4 package's own config (Tor's SOCKS port, strict_chain,
// proxy_dns, remote_dns_subnet 224, the timeouts) imports and loads.
func TestImportProxychains4PackageConfig(t *testing.T) {
	const path = "/etc/proxychains4.conf"
	data, err := os.ReadFile(path)
	if err != nil {
		testnet.SkipOrFail(t, "the proxychains4 package's %s: %v", path, err)
	}
	out, warns, err := importProxychains(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) > 0 {
		t.Errorf("warnings on the package's own config: %q", warns)
	}
	cfg, err := configs.Parse("imported.yaml", out)
	if err != nil {
		t.Fatalf("does not load: %v\n%s", err, out)
	}
	if got := hopURLs(cfg, "proxychains"); !slices.Equal(got, []string{"socks4a://127.0.0.1:9050"}) || cfg.Chains["proxychains"].Mode != "strict" {
		t.Errorf("chain %+v, want strict through socks4a://127.0.0.1:9050", cfg.Chains["proxychains"])
	}
	if cfg.Timeouts.Connect != 8*time.Second || cfg.Timeouts.Handshake != 15*time.Second || cfg.DNS.FakeIPv4 != "224.0.0.0/8" {
		t.Errorf("timeouts %+v, fake range %s; want 8s, 15s, 224.0.0.0/8", cfg.Timeouts, cfg.DNS.FakeIPv4)
	}
	if _, err := netip.ParsePrefix(cfg.DNS.FakeIPv4); err != nil {
		t.Error(err)
	}
}

// Without FILE, the usual places in proxychains' order; the command
// prints the YAML and reports warnings on stderr.
func TestImportProxychainsCommand(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("PROXYCHAINS_CONF_FILE", "")
	t.Setenv("HOME", dir)
	local := filepath.Join(dir, "proxychains.conf")
	os.WriteFile(local, []byte("bogus_directive\n[ProxyList]\nsocks5 192.0.2.7 1080\n"), 0o600)
	out, err := runApp("import", "proxychains")
	if err != nil || !strings.Contains(out, `"socks5://192.0.2.7:1080"`) || !strings.Contains(out, `proxychains.conf:1: unknown directive "bogus_directive"`) {
		t.Errorf("import from ./proxychains.conf: %v\n%s", err, out)
	}
	named := filepath.Join(dir, "named.conf")
	os.WriteFile(named, []byte("[ProxyList]\nsocks5 192.0.2.8 1080\n"), 0o600)
	t.Setenv("PROXYCHAINS_CONF_FILE", named)
	if out, err := runApp("import", "proxychains"); err != nil || !strings.Contains(out, "192.0.2.8") {
		t.Errorf("$PROXYCHAINS_CONF_FILE comes first: %v\n%s", err, out)
	}
	// Then ~/.proxychains/proxychains.conf, before the ones in /etc.
	t.Setenv("PROXYCHAINS_CONF_FILE", "")
	os.Remove(local)
	os.MkdirAll(filepath.Join(dir, ".proxychains"), 0o700)
	os.WriteFile(filepath.Join(dir, ".proxychains", "proxychains.conf"), []byte("[ProxyList]\nsocks5 192.0.2.9 1080\n"), 0o600)
	if out, err := runApp("import", "proxychains"); err != nil || !strings.Contains(out, "192.0.2.9") {
		t.Errorf("~/.proxychains/proxychains.conf comes before /etc: %v\n%s", err, out)
	}
	if _, err := runApp("import", "proxychains", "a", "b"); err == nil {
		t.Error("two files accepted")
	}
}

// FuzzImportProxychains: any file is imported or refused with an error
// naming it, and never panics; an import always loads as a veilchain
// config. (That errors and warnings never repeat a password is checked
// by TestImportProxychainsRefuses: a fuzzer puts the password anywhere.)
func FuzzImportProxychains(f *testing.F) {
	f.Add([]byte("strict_chain\nproxy_dns\nremote_dns_subnet 224\ntcp_read_time_out 15000\ntcp_connect_time_out 8000\n[ProxyList]\nsocks4 127.0.0.1 9050\n"))
	f.Add([]byte("random_chain\nchain_len = 2\nlocalnet 192.168.1.0:80/255.255.255.0\n[ProxyList]\nsocks5 192.0.2.1 1080 u Zx9secret\nhttp h.example 8080 u Zx9secret\n"))
	f.Add([]byte("[ProxyList]\nraw 192.0.2.1 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, _, err := importProxychains("fuzz.conf", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.conf") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if _, err := configs.Parse("imported.yaml", out); err != nil {
			t.Fatalf("imported config does not load: %v\n%s", err, out)
		}
	})
}
