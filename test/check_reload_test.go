package test

import (
	"bufio"
	"encoding/json"
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

	"golang.org/x/net/proxy"

	"github.com/veilchain/veilchain/resolver"
)

// exitsAt starts one serve per outbound address, all resolving with a
// zone that knows destName, and returns their addresses and the zone's.
func exitsAt(t *testing.T, ips ...string) (addrs []string, dnsAddr string) {
	exitIP(t)
	zone := &resolver.Zone{Records: map[string]netip.Addr{destName: netip.MustParseAddr("127.0.0.1")}}
	dnsAddr, err := zone.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zone.Close() })
	for _, ip := range ips {
		p := start(t, "serve", "--listen", "127.0.0.1:0", "--allow-private", "--user", "u:p", "--resolver", dnsAddr, "--outbound-ip", ip, "--log-format", "json")
		addrs = append(addrs, p.waitFor(t, "serving hop")["addr"].(string))
	}
	return addrs, dnsAddr
}

func TestCheckCommand(t *testing.T) {
	dest := newDestination(t)
	exits, dnsAddr := exitsAt(t, "127.0.0.2")
	hop1, _ := startServes(t)
	lhop1, lhop1Pin := startServePin(t)
	lexit, lexitPin := startServePin(t, "--user", "u:p", "--resolver", dnsAddr, "--outbound-ip", "127.0.0.2")
	echo := "http://" + destName + ":" + dest.port + "/ip"
	t.Run("direct chain is reported", func(t *testing.T) {
		file := writeFile(t, "leaky.yaml", fmt.Sprintf("dns: {upstream: %q}\nchains:\n  default: {direct: true}\n", dnsAddr))
		out, _ := exec.Command(veilchain(t), "check", "-c", file, "--json").Output()
		if !strings.Contains(string(out), "direct") {
			t.Fatalf("direct chain not reported: %s", out)
		}
	})
	for _, tt := range []struct {
		name   string
		hops   []string
		ok     bool
		verify func(t *testing.T, hops []map[string]any)
	}{
		{"good", []string{"socks5://" + hop1, "socks5://u:p@" + exits[0]}, true, func(t *testing.T, hops []map[string]any) {
			for _, h := range hops {
				if h["reachable"] != true || h["auth"] != "ok" || h["encrypted"] != "no" {
					t.Errorf("hop %v", h)
				}
			}
		}},
		{"layered", []string{`"socks5s://` + lhop1 + "?pin=" + lhop1Pin + `"`, `"socks5s://u:p@` + lexit + "?pin=" + lexitPin + `"`}, true, func(t *testing.T, hops []map[string]any) {
			for _, h := range hops {
				if h["reachable"] != true || h["auth"] != "ok" || h["encrypted"] != "yes (pinned)" {
					t.Errorf("hop %v", h)
				}
			}
		}},
		{"layered, wrong pin", []string{`"socks5s://` + lhop1 + "?pin=" + lexitPin + `"`}, false, func(t *testing.T, hops []map[string]any) {
			if hops[0]["reachable"] != true || hops[0]["auth"] != "n/a" || !strings.Contains(hops[0]["error"].(string), "its URL pins "+lexitPin) {
				t.Errorf("hops %v: want the pin refused, naming both pins", hops)
			}
		}},
		{"hop dead", []string{"socks5://" + hop1, "socks5://u:p@" + closedPort(t)}, false, func(t *testing.T, hops []map[string]any) {
			if hops[0]["reachable"] != true || hops[1]["reachable"] != false {
				t.Errorf("hops %v: want the second unreachable", hops)
			}
		}},
		{"wrong auth", []string{"socks5://" + hop1, "socks5://u:bad@" + exits[0]}, false, func(t *testing.T, hops []map[string]any) {
			if hops[1]["auth"] != "refused" {
				t.Errorf("hops %v: want the second's auth refused", hops)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, "check.yaml", fmt.Sprintf("dns: {upstream: %q}\nchains:\n  default: {hops: [%s]}\n", dnsAddr, strings.Join(tt.hops, ", ")))
			cmd := exec.Command(veilchain(t), "check", "-c", file, "--json", "--echo-url", echo)
			out, err := cmd.Output()
			if (err == nil) != tt.ok {
				t.Fatalf("exit status: %v, want ok=%v\n%s", err, tt.ok, out)
			}
			var doc struct {
				OK     bool `json:"ok"`
				Chains []struct {
					Hops []map[string]any `json:"hops"`
					Exit string           `json:"exit_address"`
					DNS  struct {
						Upstream, From, Name, Rcode, Error string
					} `json:"far_side_dns"`
					Leak struct {
						Run          bool
						Name         string
						LocalQueries int `json:"local_queries"`
					} `json:"dns_leak_test"`
				} `json:"chains"`
			}
			if err := json.Unmarshal(out, &doc); err != nil || len(doc.Chains) != 1 {
				t.Fatalf("JSON %v: %s", err, out)
			}
			tt.verify(t, doc.Chains[0].Hops)
			if d, l := doc.Chains[0].DNS, doc.Chains[0].Leak; tt.ok && (doc.Chains[0].Exit != "127.0.0.2" || d.Rcode != "NXDOMAIN" ||
				d.From != "dns.upstream" || d.Name == "" || !l.Run || l.LocalQueries != 0 || l.Name == "") {
				t.Errorf("exit %q, dns %+v, leak test %+v: want the exit's address, a far-side answer, no leak",
					doc.Chains[0].Exit, doc.Chains[0].DNS, doc.Chains[0].Leak)
			}
		})
	}
	// The table, for people.
	file := writeFile(t, "check.yaml", fmt.Sprintf("dns: {upstream: %q}\nchains:\n  default: {hops: [socks5://%s]}\n", dnsAddr, hop1))
	out, _ := exec.Command(veilchain(t), "check", "-c", file).Output()
	if !strings.Contains(string(out), "chain default (strict): ok") || !strings.Contains(string(out), hop1) {
		t.Errorf("table:\n%s", out)
	}
}

// TestReloadUnderLoad: SIGHUP swaps the chain for new connections while a
// live one keeps going; a broken config is refused and the old one stays.
// TestReloadUnderLoad: a reload, by SIGHUP or by `veilchain reload`
// through the control socket, sends new connections through the new
// chain (the HTTP front end's pooled ones too), keeps live connections on
// the old one, and a config that does not load leaves the running one
// (and `veilchain reload` says so, with exit status 1).
func TestReloadUnderLoad(t *testing.T) {
	for _, how := range []string{"SIGHUP", "veilchain reload"} {
		t.Run(how, func(t *testing.T) { testReloadUnderLoad(t, how) })
	}
}

func testReloadUnderLoad(t *testing.T, how string) {
	curl := requireProgram(t, "curl")
	dest := newDestination(t)
	exits, _ := exitsAt(t, "127.0.0.2", "127.0.0.3")
	file := filepath.Join(t.TempDir(), "reload.yaml")
	config := func(exit string) string {
		return fmt.Sprintf("log: {format: json}\nlisteners:\n  - {name: a, socks: 127.0.0.1:0, http: 127.0.0.1:0, chain: c}\nchains:\n  c: {hops: [socks5://u:p@%s]}\n", exit)
	}
	os.WriteFile(file, []byte(config(exits[0])), 0o600)
	control := filepath.Join(t.TempDir(), "control.sock")
	args := []string{"run", "-c", file}
	if how != "SIGHUP" {
		args = append(args, "--control", control)
	}
	run := start(t, args...)
	front := run.waitFor(t, "SOCKS5 front end listening")["addr"].(string)
	httpFront := run.waitFor(t, "HTTP proxy front end listening")["addr"].(string)
	get := func() string {
		out, _ := exec.Command(curl, "-sS", "--max-time", "10", "--socks5-hostname", front, "http://"+destName+":"+dest.port+"/").CombinedOutput()
		return string(out)
	}
	getHTTP := func() string {
		out, _ := exec.Command(curl, "-sS", "--max-time", "10", "-x", "http://"+httpFront, "http://"+destName+":"+dest.port+"/").CombinedOutput()
		return string(out)
	}
	if out := get(); !strings.HasPrefix(out, "peer 127.0.0.2:") {
		t.Fatalf("before the reload: %q", out)
	}
	// The HTTP front end now keeps a pooled upstream connection through exit A.
	if out := getHTTP(); !strings.HasPrefix(out, "peer 127.0.0.2:") {
		t.Fatalf("before the reload, http: %q", out)
	}
	// A few live connections through the old chain.
	sd, _ := proxy.SOCKS5("tcp", front, nil, proxy.Direct)
	var live []*bufio.ReadWriter
	for range 5 {
		c, err := sd.Dial("tcp", destName+":"+dest.port)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		live = append(live, bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c)))
	}
	reload := func() (string, error) {
		if how == "SIGHUP" {
			run.cmd.Process.Signal(syscall.SIGHUP)
			return "", nil
		}
		out, err := exec.Command(veilchain(t), "reload", "--control", control).CombinedOutput()
		return string(out), err
	}
	os.WriteFile(file, []byte(config(exits[1])), 0o600)
	if out, err := reload(); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	run.waitFor(t, "reload: config applied")
	if out := get(); !strings.HasPrefix(out, "peer 127.0.0.3:") {
		t.Errorf("after the reload: %q, want the new exit 127.0.0.3", out)
	}
	if out := getHTTP(); !strings.HasPrefix(out, "peer 127.0.0.3:") {
		t.Errorf("after the reload, http: %q, want the new exit (not a pooled connection through the old)", out)
	}
	for i, rw := range live {
		fmt.Fprintf(rw, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		rw.Flush()
		resp, err := http.ReadResponse(rw.Reader, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("live connection %d dropped by the reload: %v", i, err)
		}
		resp.Body.Close()
	}
	os.WriteFile(file, []byte("chains: [this is not a config"), 0o600)
	if out, err := reload(); how != "SIGHUP" && (err == nil || !strings.Contains(out, "reload failed, the running config stays")) {
		t.Errorf("veilchain reload of a broken config: %v\n%s", err, out)
	}
	run.waitFor(t, "reload failed: the running config stays")
	if out := get(); !strings.HasPrefix(out, "peer 127.0.0.3:") {
		t.Errorf("after a failed reload: %q, want the running config", out)
	}
}

// TestReloadSaysWhatNeedsARestart: a reload applies the log level at once,
// and names what it cannot apply (a listener's addresses) instead of
// dropping it silently.
func TestReloadSaysWhatNeedsARestart(t *testing.T) {
	dest := newDestination(t)
	exits, _ := exitsAt(t, "127.0.0.2")
	file := filepath.Join(t.TempDir(), "r.yaml")
	config := func(level, http string) string {
		return fmt.Sprintf("log: {format: json, level: %s}\nlisteners:\n  - {name: a, socks: 127.0.0.1:0, http: %q, chain: c}\nchains:\n  c: {hops: [socks5://u:p@%s]}\n", level, http, exits[0])
	}
	os.WriteFile(file, []byte(config("info", "")), 0o600)
	control := filepath.Join(t.TempDir(), "control.sock")
	run := start(t, "run", "-c", file, "--control", control)
	front := run.waitFor(t, "SOCKS5 front end listening")["addr"].(string)
	os.WriteFile(file, []byte(config("debug", "127.0.0.1:0")), 0o600)
	if out, err := exec.Command(veilchain(t), "reload", "--control", control).CombinedOutput(); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if w := run.waitFor(t, "reload: these changes take effect only after a restart"); w["fields"] != "listeners" {
		t.Errorf("restart-only fields %v, want listeners", w["fields"])
	}
	sd, _ := proxy.SOCKS5("tcp", front, nil, proxy.Direct)
	c, err := sd.Dial("tcp", destName+":"+dest.port)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	run.waitFor(t, "socks connection closed") // a debug line: the new level is on
}
