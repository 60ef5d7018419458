package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// bridge is a `veilchain run -c FILE` front end through two serves (the
// exit sends from 127.0.0.2 and alone resolves destName), on fixed free
// ports so that the commands that read the config (env, pac, exec) find
// it, and a destination.
type bridge struct {
	cfgFile         string
	socks, http     string // front-end addresses
	dest            *destination
	run             *proc
	hop1, exit      string
	url             string // the destination by a name only the exit can resolve
	extraRules      string
	listenerOptions string
}

func newBridge(t *testing.T) *bridge {
	t.Helper()
	b := &bridge{dest: newDestination(t)}
	b.hop1, b.exit = startServes(t)
	b.socks, b.http = "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	b.url = "http://" + destName + ":" + b.dest.port + "/"
	return b
}

// start writes the config and starts run with it.
func (b *bridge) start(t *testing.T) {
	t.Helper()
	cfg := "log: {format: json}\nlisteners:\n  - {name: app, socks: " + b.socks + ", http: " + b.http + ", chain: two" + b.listenerOptions + "}\n" +
		"chains:\n  two:\n    hops: [socks5://" + b.hop1 + ", socks5://u:p@" + b.exit + "]\n" + b.extraRules
	b.cfgFile = filepath.Join(t.TempDir(), "veilchain.yaml")
	if err := os.WriteFile(b.cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	b.run = start(t, "run", "-c", b.cfgFile)
	b.run.waitFor(t, "SOCKS5 front end listening")
	b.run.waitFor(t, "HTTP proxy front end listening")
}

// onlyExitSeen fails unless the destination saw want requests, all from the exit.
func (b *bridge) onlyExitSeen(t *testing.T, want int) {
	t.Helper()
	peers := b.dest.seenPeers()
	if len(peers) != want {
		t.Errorf("destination saw %d requests (%q), want %d", len(peers), peers, want)
	}
	for _, p := range peers {
		if !strings.HasPrefix(p, "127.0.0.2:") {
			t.Errorf("destination saw %s, want only the exit 127.0.0.2", p)
		}
	}
}

// noProxyEnv is this process's environment without any proxy variable.
func noProxyEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "all_proxy", "http_proxy", "https_proxy", "no_proxy":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// veilchainOut runs the binary and returns its standard output.
func veilchainOut(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(veilchain(t), args...)
	cmd.Env = noProxyEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("veilchain %q: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// TestEnvInShells: the lines `veilchain env` prints for sh and fish, run
// in that shell, make a plain `curl URL` (no proxy flags) reach a name
// only the exit can resolve, through the SOCKS variables and, with those
// unset, through the HTTP ones; without the lines the same curl fails.
func TestEnvInShells(t *testing.T) {
	curl := requireProgram(t, "curl")
	b := newBridge(t)
	b.start(t)
	get := "\n" + curl + " -sS --max-time 10 " + b.url + "\n"
	requests := 0
	for _, tt := range []struct{ shell, unsetSOCKS string }{
		{"sh", "unset ALL_PROXY all_proxy"},
		{"fish", "set -e ALL_PROXY; set -e all_proxy"},
	} {
		t.Run(tt.shell, func(t *testing.T) {
			sh := requireProgram(t, tt.shell)
			lines := veilchainOut(t, "env", "-c", b.cfgFile, "--shell", tt.shell)
			for _, script := range []struct{ name, text string }{
				{"through the SOCKS front end", lines + get},
				{"through the HTTP front end", lines + tt.unsetSOCKS + get},
			} {
				cmd := exec.Command(sh, "-c", script.text)
				cmd.Env = noProxyEnv()
				out, err := cmd.CombinedOutput()
				if err != nil || !strings.HasPrefix(string(out), "peer 127.0.0.2:") {
					t.Errorf("%s %s: %v\n%s\nscript:\n%s", tt.shell, script.name, err, out, script.text)
				}
				requests++
			}
			// The control: without the lines, curl cannot even resolve the name.
			cmd := exec.Command(sh, "-c", get)
			cmd.Env = noProxyEnv()
			if out, err := cmd.CombinedOutput(); err == nil {
				t.Errorf("%s without the variables reached the destination: %s", tt.shell, out)
			}
		})
	}
	b.onlyExitSeen(t, requests)
}

// TestImportedProxychainsConfigRuns: a proxychains.conf that proxychains4
// itself uses to reach the destination through two serves (strict_chain,
// proxy_dns, a password on the exit) is imported, and `veilchain run -c`
// with the result takes curl to the same destination the same way.
func TestImportedProxychainsConfigRuns(t *testing.T) {
	curl := requireProgram(t, "curl")
	b := newBridge(t)
	_, hop1Port, _ := strings.Cut(b.hop1, ":")
	_, exitPort, _ := strings.Cut(b.exit, ":")
	conf := writeFile(t, "proxychains.conf", "strict_chain\nproxy_dns\nquiet_mode\ntcp_read_time_out 15000\ntcp_connect_time_out 8000\n"+
		"localnet 10.0.0.0/255.0.0.0\n[ProxyList]\nsocks5 127.0.0.1 "+hop1Port+"\nsocks5 127.0.0.1 "+exitPort+" u p\n")
	pc := requireProgram(t, "proxychains4")
	if out, err := exec.Command(pc, "-q", "-f", conf, curl, "-sS", "--max-time", "10", b.url).CombinedOutput(); err != nil ||
		!strings.HasPrefix(string(out), "peer 127.0.0.2:") {
		t.Fatalf("proxychains4 with the file itself: %v\n%s", err, out)
	}

	yaml := veilchainOut(t, "import", "proxychains", conf)
	for _, want := range []string{"mode: strict", "socks5://u:p@127.0.0.1:" + exitPort, "direct: true"} {
		if !strings.Contains(yaml, want) {
			t.Errorf("imported config lacks %q:\n%s", want, yaml)
		}
	}
	imported := writeFile(t, "imported.yaml", yaml)
	run := start(t, "run", "-c", imported, "--socks", "127.0.0.1:0", "--http", "", "--log-format", "json")
	front := run.waitFor(t, "SOCKS5 front end listening")["addr"].(string)
	if out := curlGet(t, front, b.url); !strings.HasPrefix(out, "peer 127.0.0.2:") {
		t.Fatalf("through the imported config: %q, want the exit 127.0.0.2", out)
	}
	b.onlyExitSeen(t, 2)
}
