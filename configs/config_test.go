package configs

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestDefaultAndExample(t *testing.T) {
	d := Default()
	if d.Log.Level != "info" || d.Timeouts.Handshake != 10*time.Second || len(d.Listeners) != 1 ||
		d.Listeners[0].Socks != "127.0.0.1:1080" || d.Listeners[0].HTTP != "127.0.0.1:8118" || len(d.Chains) != 0 ||
		d.HTTPProxy.Referer != "origin" || d.HTTPProxy.MaxHeaderBytes != 64<<10 {
		t.Fatalf("unexpected default: %+v", d)
	}
	c, err := Load("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Chains["two-hops"].Hops; len(got) != 2 || got[1].URL != "socks5://alice:secret@127.0.0.1:9002" {
		t.Fatalf("example hops = %q", got)
	}
	// Fields the file leaves out keep their defaults; fields it sets win.
	if c.Timeouts.Handshake != 5*time.Second || c.Timeouts.Connect != 10*time.Second || c.Log.Format != "text" {
		t.Fatalf("example timeouts/log = %+v %+v", c.Timeouts, c.Log)
	}
	if c.Listeners[0].Name != "desktop" || len(c.Listeners) != 1 {
		t.Fatalf("listeners = %+v", c.Listeners)
	}
	if c.Where("chains", "two-hops", "hops", 1) != "example.yaml:18" {
		t.Fatalf("Where = %s", c.Where("chains", "two-hops", "hops", 1))
	}
	d2, err := Load(filepath.Join("testdata", "direct.yaml"))
	if err != nil {
		t.Fatalf("explicit direct chain and a pool: %v", err)
	}
	if p := d2.Chains["pooled"]; p.Mode != "dynamic" || p.HealthCheck != 30*time.Second || len(p.Hops) != 2 ||
		len(p.Hops[1].Pool) != 2 || p.Hops[1].Select != "least-latency" || p.Hops[0].URL != "socks5://127.0.0.1:9001" {
		t.Fatalf("pooled chain = %+v", p)
	}
}

func TestLoadErrorsNameFileLineAndField(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"unknown-field.yaml", []string{`unknown-field.yaml:3: unknown field "sock" in listeners[0]; did you mean "socks"?`}},
		{"bad-duration.yaml", []string{"bad-duration.yaml:3: timeouts.handshake: `soon` is not a duration such as 10s"}},
		{"bad-hop.yaml", []string{`bad-hop.yaml:9: chains.main.hops[1]: hop URL "127.0.0.1:9002": want scheme://`}},
		{"bad-listener.yaml", []string{
			`bad-listener.yaml:2: log.level: "loud" is not one of`,
			`bad-listener.yaml:5: listeners[0].socks: "localhost" is not host:port`,
			`bad-listener.yaml:6: listeners[0].http: "8118" is not host:port`,
			`bad-listener.yaml:8: listeners[1].name: "a" is used twice`,
			`bad-listener.yaml:8: listeners[1].socks: missing`,
			`bad-listener.yaml:12: chains.main.direct: a chain is either direct or has hops`,
			`bad-listener.yaml:14: chains.empty.hops: no hops`,
			`bad-listener.yaml:16: http_proxy.referer: "sometimes" is not origin, drop or keep`,
			`bad-listener.yaml:17: http_proxy.max_uri_bytes: must be between`,
		}},
		{"not-yaml.yaml", []string{"not-yaml.yaml:"}},
		{"missing.yaml", []string{"missing.yaml", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tt.file))
			if err == nil {
				t.Fatal("loaded a bad file")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

// Hop URLs, modes and pool selectors are checked by the chain builder's
// own parsers: what the builder accepts (a password holding '/') loads,
// what it refuses is refused with file:line and the field path, and no
// error repeats a password.
func TestValidateUsesTheChainParsers(t *testing.T) {
	const head = "listeners:\n  - name: a\n    socks: 127.0.0.1:1080\n    chain: main\nchains:\n  main:\n"
	for _, tt := range []struct {
		name, chain string
		want        string // "" loads
	}{
		{"slash in password", "    hops:\n      - socks5://alice:pa/ss@127.0.0.1:1080\n", ""},
		{"slash in pool password", "    hops:\n      - {pool: [socks5://a:b/c@h:1, http://u:p/q@h:2], select: random}\n", ""},
		{"no scheme", "    hops:\n      - 127.0.0.1:9002\n", `t.yaml:8: chains.main.hops[0]: hop URL "127.0.0.1:9002": want scheme://`},
		{"unknown scheme", "    hops:\n      - ftp://h:21\n", `t.yaml:8: chains.main.hops[0]: hop URL "ftp://h:21": unsupported scheme "ftp"`},
		{"unknown option", "    hops:\n      - socks5://alice:se/cret@h:1?bogus=1\n", `t.yaml:8: chains.main.hops[0]: hop URL "socks5://alice:xxxxx@h:1?bogus=1": unknown option "bogus"`},
		{"bad pool member", "    hops:\n      - pool:\n          - socks5://h:1\n          - socks5://h:0\n", `t.yaml:10: chains.main.hops[0].pool[1]: hop URL "socks5://h:0": bad port "0"`},
		{"bad selector", "    hops:\n      - {pool: [socks5://h:1], select: fastest}\n", `t.yaml:8: chains.main.hops[0].select: pool selector "fastest": want failover`},
		{"bad mode", "    mode: chaotic\n    hops:\n      - socks5://h:1\n", `t.yaml:7: chains.main.mode: chain mode "chaotic": want strict, dynamic, random or round-robin`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(head+tt.chain))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v\nwant %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), "se/cret"):
				t.Fatalf("error repeats the password: %v", err)
			}
		})
	}
}

// TestStarter: the config `veilchain init` writes loads; its two hops are
// refused, by file:line, until the placeholders are replaced; replaced,
// it is a chain of two layered hops on the default's listeners.
func TestStarter(t *testing.T) {
	c, err := Parse("starter.yaml", Starter())
	if err != nil {
		t.Fatalf("the starter does not load: %v", err)
	}
	d := Default()
	if len(c.Listeners) != 1 || c.Listeners[0].Socks != d.Listeners[0].Socks || c.Listeners[0].HTTP != d.Listeners[0].HTTP ||
		c.Listeners[0].Chain != "default" || len(c.Chains["default"].Hops) != 2 {
		t.Fatalf("starter listeners %+v, chains %+v", c.Listeners, c.Chains)
	}
	err = c.Unfinished()
	if err == nil {
		t.Fatal("the starter's placeholder hops are not reported")
	}
	for _, want := range []string{
		"starter.yaml still has placeholder hops: edit it",
		"the URL `veilchain serve` printed",
		"starter.yaml:30: chains.default.hops[0]: socks5s://hop1.example:9001?pin=sha256:" + Placeholder,
		"starter.yaml:31: chains.default.hops[1]: socks5s://USER:xxxxx@exit.example:9001",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Unfinished: %q\ndoes not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "USER:PASSWORD@") {
		t.Errorf("Unfinished shows a password: %v", err)
	}
	if err := d.Unfinished(); err != nil {
		t.Errorf("the default is unfinished: %v", err)
	}
	filled := strings.ReplaceAll(string(Starter()), Placeholder, "0SRu79h_KmHoroLP6kwxIMvyAWhsd29pRcOYfRhzbWA")
	c, err = Parse("filled.yaml", []byte(filled))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Unfinished(); err != nil {
		t.Errorf("filled in, still unfinished: %v", err)
	}
	if got := c.Chains["default"].Hops[1].URL; got != "socks5s://USER:PASSWORD@exit.example:9001?pin=sha256:0SRu79h_KmHoroLP6kwxIMvyAWhsd29pRcOYfRhzbWA" {
		t.Errorf("exit = %q", got)
	}
}

// TestUserFile: the platform's usual place, from the variables each
// platform takes it from.
func TestUserFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir) // Linux, FreeBSD
	t.Setenv("HOME", dir)            // macOS
	t.Setenv("AppData", dir)         // Windows
	want := filepath.Join(dir, "veilchain", "config.yaml")
	switch runtime.GOOS {
	case "darwin", "ios":
		want = filepath.Join(dir, "Library", "Application Support", "veilchain", "config.yaml")
	case "plan9":
		want = filepath.Join(dir, "lib", "veilchain", "config.yaml")
	}
	if got, err := UserFile(); err != nil || got != want {
		t.Fatalf("UserFile = %q, %v; want %s", got, err, want)
	}
	t.Setenv("XDG_CONFIG_HOME", "relative/dir")
	if runtime.GOOS == "linux" || runtime.GOOS == "freebsd" {
		// os.UserConfigDir refuses a relative XDG_CONFIG_HOME.
		if got, err := UserFile(); err == nil {
			t.Errorf("UserFile with a relative XDG_CONFIG_HOME = %q, want an error", got)
		}
	}
}

// Type errors say which field, and what it wants, in the config's words,
// not Go's; an unknown field gets the known one it most likely meant.
func TestTypeErrorsInWords(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"timeout:\n  connect: 5s\n", `x.yaml:1: unknown field "timeout" at the top level; did you mean "timeouts"?`},
		{"timeouts:\n  idle: two\n", "x.yaml:2: timeouts.idle: `two` is not a duration such as 10s or 1m30s"},
		{"http_proxy:\n  max_header_bytes: many\n", "x.yaml:2: http_proxy.max_header_bytes: `many` is not a whole number"},
		{"listeners:\n  - name: a\n    early_reply: sometimes\n", "x.yaml:3: listeners[0].early_reply: `sometimes` is not true or false"},
		{"chains: [a, b]\n", "x.yaml:1: chains: a list is not"},
		{"log:\n  levle: debug\n", `x.yaml:2: unknown field "levle" in log; did you mean "level"?`},
		{"log:\n  zzzzzz: debug\n", `x.yaml:2: unknown field "zzzzzz" in log (known: level, format)`},
	} {
		_, err := Parse("x.yaml", []byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v\nwant %q", tt.yaml, err, tt.want)
		}
		if err != nil && (strings.Contains(err.Error(), "configs.") || strings.Contains(err.Error(), "!!str")) {
			t.Errorf("%q: error %v speaks Go", tt.yaml, err)
		}
	}
}

// TestStatusEchoURL: an http(s) URL with status set loads; anything else
// is refused at its line.
func TestStatusEchoURL(t *testing.T) {
	const head = "listeners:\n  - {name: a, socks: 127.0.0.1:1080, chain: main}\nchains:\n  main: {hops: [socks5://h:1]}\n"
	for _, tt := range []struct{ name, extra, want string }{
		{"https", "status: 127.0.0.1:9080\nstatus_echo_url: https://ip.example/json\n", ""},
		{"not a URL", "status: 127.0.0.1:9080\nstatus_echo_url: ip.example\n", `t.yaml:6: status_echo_url: "ip.example" is not an http(s) URL`},
		{"no status", "status_echo_url: http://ip.example/\n", "t.yaml:5: status_echo_url: is asked by the status server: set status too"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(head+tt.extra))
			switch {
			case tt.want == "" && (err != nil || c.StatusEchoURL != "https://ip.example/json"):
				t.Fatalf("refused or lost: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v\nwant %q", err, tt.want)
			}
		})
	}
}
