package test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/proxy"

	"github.com/veilchain/veilchain/resolver"
)

// waitForListener returns the first log line with message msg for listener.
func (p *proc) waitForListener(t *testing.T, msg, listener string) map[string]any {
	t.Helper()
	for {
		m := p.waitFor(t, msg)
		if m["listener"] == listener {
			return m
		}
	}
}

// TestPolicy: two listeners with their own chains (whose exits send from
// 127.0.0.2 and 127.0.0.3), rules that route and block, front-end auth on
// one listener, and a block list reloaded on SIGHUP under a live connection.
func TestPolicy(t *testing.T) {
	curl := requireProgram(t, "curl")
	dest := newDestination(t)
	zone := &resolver.Zone{Records: map[string]netip.Addr{}}
	for _, n := range []string{destName, "other.veilchain.test", "x.ads.veilchain.test"} {
		zone.Records[n] = netip.MustParseAddr("127.0.0.1")
	}
	dnsAddr, err := zone.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer zone.Close()
	exitIP(t)
	exits := map[string]string{}
	for name, ip := range map[string]string{"a": "127.0.0.2", "b": "127.0.0.3"} {
		p := start(t, "serve", "--listen", "127.0.0.1:0", "--allow-private", "--resolver", dnsAddr, "--outbound-ip", ip, "--log-format", "json")
		exits[name] = p.waitFor(t, "serving hop")["addr"].(string)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	dir := t.TempDir()
	blockFile := filepath.Join(dir, "block.txt")
	os.WriteFile(blockFile, []byte("# nothing yet\n"), 0o644)
	cfg := fmt.Sprintf(`log: {format: json}
users:
  alice: %q
listeners:
  - {name: app-a, socks: 127.0.0.1:0, http: 127.0.0.1:0, chain: a}
  - {name: app-b, socks: 127.0.0.1:0, http: 127.0.0.1:0, chain: b, auth: true}
chains:
  a: {hops: [socks5://%s]}
  b: {hops: [socks5://%s]}
rules:
  - {name: ads, suffixes: [.ads.veilchain.test], block: true}
  - {name: other-via-b, domains: [other.veilchain.test], listeners: [app-a], chain: b}
block_lists: [%s]
`, hash, exits["a"], exits["b"], blockFile)
	cfgFile := filepath.Join(dir, "policy.yaml")
	os.WriteFile(cfgFile, []byte(cfg), 0o600)
	run := start(t, "run", "-c", cfgFile)
	addr := map[string]string{}
	for _, l := range []string{"app-a", "app-b"} {
		addr[l+" socks"] = run.waitForListener(t, "SOCKS5 front end listening", l)["addr"].(string)
		addr[l+" http"] = run.waitForListener(t, "HTTP proxy front end listening", l)["addr"].(string)
	}
	get := func(args ...string) (string, error) {
		out, err := exec.Command(curl, append([]string{"-sS", "--max-time", "10"}, args...)...).CombinedOutput()
		return string(out), err
	}
	url := func(host string) string { return "http://" + host + ":" + dest.port + "/" }

	for _, tt := range []struct {
		name string
		args []string
		want string // prefix of the output; "" means the request must fail
	}{
		{"app-a default chain, socks", []string{"--socks5-hostname", addr["app-a socks"], url(destName)}, "peer 127.0.0.2:"},
		{"app-a default chain, http", []string{"-x", "http://" + addr["app-a http"], url(destName)}, "peer 127.0.0.2:"},
		{"app-a rule to chain b", []string{"--socks5-hostname", addr["app-a socks"], url("other.veilchain.test")}, "peer 127.0.0.3:"},
		{"blocked, socks", []string{"--socks5-hostname", addr["app-a socks"], url("x.ads.veilchain.test")}, ""},
		{"blocked, http", []string{"-x", "http://" + addr["app-a http"], url("x.ads.veilchain.test")}, "veilchain: refused by policy (rule 1 \"ads\")"},
		{"app-b with credentials, socks", []string{"--socks5-hostname", addr["app-b socks"], "--proxy-user", "alice:pw", url(destName)}, "peer 127.0.0.3:"},
		{"app-b with credentials, http", []string{"-x", "http://alice:pw@" + addr["app-b http"], url(destName)}, "peer 127.0.0.3:"},
		{"app-b without credentials, socks", []string{"--socks5-hostname", addr["app-b socks"], url(destName)}, ""},
		{"app-b wrong password, socks", []string{"--socks5-hostname", addr["app-b socks"], "--proxy-user", "alice:nope", url(destName)}, ""},
		{"app-b without credentials, http", []string{"-x", "http://" + addr["app-b http"], url(destName)}, "veilchain: proxy authentication required"},
		{"app-b rules of app-a do not apply", []string{"--socks5-hostname", addr["app-b socks"], "--proxy-user", "alice:pw", url("other.veilchain.test")}, "peer 127.0.0.3:"},
	} {
		out, err := get(tt.args...)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("%s: succeeded with %q, want a refusal", tt.name, out)
		case tt.want != "" && !strings.HasPrefix(out, tt.want):
			t.Errorf("%s: %q (%v), want %q", tt.name, out, err, tt.want)
		}
	}
	if n := zone.Queries("x.ads.veilchain.test"); n != 0 {
		t.Errorf("a blocked name was resolved %d times", n)
	}

	// Block list reload under a live connection.
	sd, _ := proxy.SOCKS5("tcp", addr["app-a socks"], nil, proxy.Direct)
	live, err := sd.Dial("tcp", destName+":"+dest.port)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	os.WriteFile(blockFile, []byte(destName+"\n"), 0o644)
	run.cmd.Process.Signal(syscall.SIGHUP)
	run.waitFor(t, "reload: config applied")
	if out, err := get("--socks5-hostname", addr["app-a socks"], url(destName)); err == nil {
		t.Errorf("after the reload a blocked name still went through: %q", out)
	}
	live.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(live, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", destName)
	resp, err := http.ReadResponse(bufio.NewReader(live), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the live connection died with the reload: %v %v", resp, err)
	}
}
