package test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
	cfg := "log: {format: json, level: debug}\nlisteners:\n  - {name: app, socks: " + b.socks + ", http: " + b.http + ", chain: two" + b.listenerOptions + "}\n" +
		"chains:\n  two:\n    hops: [socks5://" + b.hop1 + ", socks5://u:p@" + b.exit + "]\n" + b.extraRules
	b.cfgFile = filepath.Join(t.TempDir(), "veilchain.yaml")
	if err := os.WriteFile(b.cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	b.run = start(t, "run", "-c", b.cfgFile)
	b.run.waitFor(t, "SOCKS5 front end listening")
	b.run.waitFor(t, "HTTP proxy front end listening")
}

// onlyExitSeen fails unless the destination saw want requests (at least
// one), all from the exit.
func (b *bridge) onlyExitSeen(t *testing.T, want int) {
	t.Helper()
	peers := b.dest.seenPeers()
	if len(peers) != want || want == 0 {
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

// execVeilchain runs `veilchain exec ARGS` with stdin, and returns its
// stdout, stderr and exit status.
func execVeilchain(t *testing.T, stdin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(veilchain(t), append([]string{"exec"}, args...)...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("veilchain exec %q: %v", args, err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// TestExec: `veilchain exec -- curl URL`, with no proxy flag, reaches a
// name only the exit can resolve: first with front ends of its own (no
// veilchain runs), then through the running one (whose log shows the
// request); with --force, `curl --noproxy '*'`, which ignores the
// variables, does too (and fails without --force). The destination sees
// only the exit. Exit status, stdin and stdout are the program's.
func TestExec(t *testing.T) {
	curl := requireProgram(t, "curl")
	b := newBridge(t)
	b.start(t) // writes the config; stopped below for the in-process case
	b.run.cmd.Process.Kill()
	b.run.cmd.Wait()
	env := noProxyEnv()
	get := []string{"-c", b.cfgFile, "--", curl, "-sS", "--max-time", "10", b.url}

	out, errOut, code := execVeilchain(t, "", env, get...)
	if code != 0 || !strings.HasPrefix(out, "peer 127.0.0.2:") {
		t.Fatalf("exec with its own front ends: status %d, %q\n%s", code, out, errOut)
	}

	b.start(t)
	out, errOut, code = execVeilchain(t, "", env, get...)
	if code != 0 || !strings.HasPrefix(out, "peer 127.0.0.2:") {
		t.Fatalf("exec through the running veilchain: status %d, %q\n%s", code, out, errOut)
	}
	if m := b.run.waitFor(t, "forwarded"); m["dest"] != destName+":"+b.dest.port {
		t.Errorf("the running veilchain forwarded %v", m)
	}

	noproxy := []string{"-c", b.cfgFile, "--", curl, "-sS", "--max-time", "10", "--noproxy", "*", b.url}
	if out, _, code := execVeilchain(t, "", env, noproxy...); code == 0 {
		t.Errorf("curl --noproxy '*' without --force reached the destination: %q", out)
	}
	requireProgram(t, "proxychains4")
	out, errOut, code = execVeilchain(t, "", env, append([]string{"--force"}, noproxy...)...)
	if code != 0 || !strings.HasPrefix(out, "peer 127.0.0.2:") {
		t.Fatalf("exec --force with curl --noproxy '*': status %d, %q\n%s", code, out, errOut)
	}
	if m := b.run.waitFor(t, "socks connection closed"); m["dest"] != destName+":"+b.dest.port {
		t.Errorf("the running veilchain's SOCKS front end carried %v", m)
	}
	// --force with its own front ends, and a program honouring the
	// variables too (they reach veilchain's ports around proxychains).
	b.run.cmd.Process.Kill()
	b.run.cmd.Wait()
	out, errOut, code = execVeilchain(t, "", env, append([]string{"--force"}, get...)...)
	if code != 0 || !strings.HasPrefix(out, "peer 127.0.0.2:") {
		t.Fatalf("exec --force with its own front ends: status %d, %q\n%s", code, out, errOut)
	}
	b.onlyExitSeen(t, 4)

	// The program's status, stdin and stdout.
	if _, _, code := execVeilchain(t, "", env, "-c", b.cfgFile, "--", "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("exit status %d, want the program's 7", code)
	}
	if out, _, code := execVeilchain(t, "hello\n", env, "-c", b.cfgFile, "--", "cat"); code != 0 || out != "hello\n" {
		t.Errorf("cat through exec: %q, status %d", out, code)
	}
	if out, _, _ := execVeilchain(t, "", env, "-c", b.cfgFile, "--", "sh", "-c", "echo $ALL_PROXY $http_proxy [$NO_PROXY]"); !strings.HasPrefix(out, "socks5h://127.0.0.1:") ||
		!strings.Contains(out, " http://127.0.0.1:") || !strings.HasSuffix(out, " []\n") {
		t.Errorf("the program's variables: %q", out)
	}
	// --force without proxychains4 fails, and says why.
	pathEnv := append(noProxyEnv(), "PATH="+t.TempDir())
	if _, errOut, code := execVeilchain(t, "", pathEnv, append([]string{"--force"}, get...)...); code == 0 || !strings.Contains(errOut, "proxychains4, which is not installed") {
		t.Errorf("--force without proxychains4: status %d, %q", code, errOut)
	}
}

// TestExecForwardsSignals: SIGTERM and SIGINT sent to `veilchain exec`
// reach the program (which reports them and exits with its own status),
// and veilchain exits with that status.
func TestExecForwardsSignals(t *testing.T) {
	b := newBridge(t)
	b.start(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		// The loop ends on its own after about 10 s: a program the signal
		// never reached fails the test instead of outliving it.
		script := `trap 'echo got signal; exit 3' TERM INT; echo ready; i=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; echo no signal`
		cmd := exec.Command(veilchain(t), "exec", "-c", b.cfgFile, "--", "sh", "-c", script)
		cmd.Env = noProxyEnv()
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(stdout)
		if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
			t.Fatalf("%v: program said %q, %v", sig, line, err)
		}
		cmd.Process.Signal(sig)
		timer := time.AfterFunc(15*time.Second, func() { cmd.Process.Kill() })
		rest, _ := io.ReadAll(r)
		timer.Stop()
		cmd.Wait()
		if string(rest) != "got signal\n" || cmd.ProcessState.ExitCode() != 3 {
			t.Errorf("%v: program said %q, exec exited %d; want the signal reported and status 3", sig, rest, cmd.ProcessState.ExitCode())
		}
	}
}

// TestServedPAC: the HTTP front end serves at /proxy.pac the file `veilchain
// pac` prints for the same config, as application/x-ns-proxy-autoconfig;
// a reload that adds a direct rule changes what it serves.
func TestServedPAC(t *testing.T) {
	b := newBridge(t)
	b.start(t)
	get := func() (string, string) {
		t.Helper()
		resp, err := http.Get("http://" + b.http + "/proxy.pac")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /proxy.pac: %s %s", resp.Status, body)
		}
		return string(body), resp.Header.Get("Content-Type")
	}
	served, ct := get()
	printed := veilchainOut(t, "pac", "-c", b.cfgFile)
	if served != printed || ct != "application/x-ns-proxy-autoconfig" {
		t.Errorf("served (%s):\n%s\nprinted:\n%s", ct, served, printed)
	}
	if !strings.Contains(served, `"SOCKS5 `+b.socks+"; PROXY "+b.http+`"`) || strings.Contains(served, "return DIRECT_") {
		t.Errorf("served PAC:\n%s", served)
	}
	data, _ := os.ReadFile(b.cfgFile)
	os.WriteFile(b.cfgFile, append(data, "rules:\n  - {name: lan, suffixes: [.lan.example], direct: true}\n"...), 0o600)
	b.run.cmd.Process.Signal(syscall.SIGHUP)
	b.run.waitFor(t, "reload: config applied")
	if served, _ := get(); !strings.Contains(served, `[".lan.example"]`) || !strings.Contains(served, "return DIRECT_;") {
		t.Errorf("after the reload the PAC has no direct rule:\n%s", served)
	}
}

// TestChromiumPAC: headless Chromium given only --proxy-pac-url pointing
// at the served PAC reaches a name only the exit can resolve, through the
// chain (the destination sees the exit); a destination a rule blocks is
// refused by the proxy, which logs the rule, and sees no connection.
func TestChromiumPAC(t *testing.T) {
	chromium := requireProgram(t, "chromium")
	b := newBridge(t)
	blocked := newDestination(t)
	b.extraRules = "rules:\n  - {name: no-second, domains: [" + destName + "], ports: [" + blocked.port + "], block: true}\n"
	b.start(t)
	browse := func(url string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
			"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir="+t.TempDir(),
			"--proxy-pac-url=http://"+b.http+"/proxy.pac", "--dump-dom", url)
		cmd.Env = noProxyEnv()
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if ctx.Err() != nil {
			t.Fatalf("chromium did not finish: %v\n%s", err, stderr.String())
		}
		return string(out)
	}
	if out := browse(b.url); !strings.Contains(out, "peer 127.0.0.2:") {
		t.Fatalf("chromium with the PAC got:\n%s", out)
	}
	b.onlyExitSeen(t, len(b.dest.seenPeers())) // the page, and perhaps /favicon.ico
	blockedURL := "http://" + destName + ":" + blocked.port + "/"
	if out := browse(blockedURL); strings.Contains(out, "peer ") {
		t.Errorf("a blocked destination answered chromium:\n%s", out)
	}
	if m := b.run.waitFor(t, "refused by policy"); !strings.Contains(m["reason"].(string), `"no-second"`) {
		t.Errorf("refusal logged as %v", m)
	}
	if n := blocked.accepted.Load(); n != 0 {
		t.Errorf("the blocked destination saw %d connections", n)
	}
}
