package test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitThenRun: on a clean config dir, run (no flags) says where init
// would write; init writes the starter; run then names that file and the
// lines still to fill in, as does check; filled in as the file says (the
// URLs serve printed pasted in), run with no flags reads it, says so, and
// carries curl through both hops to the destination.
func TestInitThenRun(t *testing.T) {
	home := t.TempDir()
	file := filepath.Join(home, "veilchain", "config.yaml")
	veil := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(veilchain(t), args...)
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+home)
		out, err := cmd.CombinedOutput()
		if args[0] == "init" && err != nil {
			t.Fatalf("init: %v\n%s", err, out)
		}
		var ee *exec.ExitError
		if args[0] != "init" && (!errors.As(err, &ee) || ee.ExitCode() != 1) {
			t.Fatalf("%s: err = %v, want exit status 1\n%s", args, err, out)
		}
		return string(out)
	}
	mustSay := func(out string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("output does not say %q:\n%s", w, out)
			}
		}
	}

	mustSay(veil("run"), "no hops configured", "run `veilchain init`, which writes a starter config to "+file)
	// With hops from flags and no file, run says it uses the default only.
	p := startIn(t, home, "run", "--socks", "127.0.0.1:0", "--http", "", "--hop", "socks5://127.0.0.1:1", "--log-format", "json")
	if got := p.waitFor(t, "no config file: using the embedded default and the flags")["looked_for"]; got != file {
		t.Errorf("run looked for its config at %v, want %s", got, file)
	}

	if out := veil("init"); !strings.HasPrefix(out, file+"\n") {
		t.Errorf("init printed %q, want the path %s first", out, file)
	}
	for _, cmd := range []string{"run", "check"} {
		mustSay(veil(cmd), file+" still has placeholder hops: edit it", "the URL `veilchain serve` printed",
			file+":30: chains.default.hops[0]: socks5s://hop1.example:9001?pin=sha256:PASTE-THE-PIN-GIVEN-BY-VEILCHAIN-SERVE-HERE",
			file+":31: chains.default.hops[1]: socks5s://USER:xxxxx@exit.example:9001")
	}

	// Fill it in as the file says, with two serves' URLs; listen on free
	// ports (the defaults may be taken here) and log JSON for waitFor.
	dest := newDestination(t)
	_, dnsAddr := exitDNS(t)
	hop1, pin1 := startServePin(t)
	exit, pin2 := startServePin(t, "--user", "u:p", "--resolver", dnsAddr, "--outbound-ip", exitIP(t).String())
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(data)
	for _, r := range [][2]string{
		{"socks5s://hop1.example:9001?pin=sha256:PASTE-THE-PIN-GIVEN-BY-VEILCHAIN-SERVE-HERE", "socks5s://" + hop1 + "?pin=" + pin1},
		{"socks5s://USER:PASSWORD@exit.example:9001?pin=sha256:PASTE-THE-PIN-GIVEN-BY-VEILCHAIN-SERVE-HERE", "socks5s://u:p@" + exit + "?pin=" + pin2},
		{"socks: 127.0.0.1:1080", "socks: 127.0.0.1:0"},
		{"http: 127.0.0.1:8118", "http: 127.0.0.1:0"},
		{"level: info", "format: json\n  level: info"},
	} {
		if strings.Count(cfg, r[0]) != 1 {
			t.Fatalf("the starter has no single %q:\n%s", r[0], cfg)
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run := startIn(t, home, "run")
	if got := run.waitFor(t, "config read")["file"]; got != file {
		t.Errorf("run read %v, want %s", got, file)
	}
	front := run.waitFor(t, "SOCKS5 front end listening")["addr"].(string)
	if out := curlGet(t, front, "http://"+destName+":"+dest.port+"/"); !strings.HasPrefix(out, "peer 127.0.0.2:") {
		t.Fatalf("destination answered %q, want it to have seen the exit 127.0.0.2", out)
	}
}
