package test

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veilchain/veilchain/internal/testnet"
)

// binaryPath is where the shipped service files expect the binary; the
// README's install steps put it there.
const binaryPath = "/usr/local/bin/veilchain"

// unitFile is a systemd unit's [Section] Key=value settings, each key's
// values in order.
type unitFile map[string][]string

func readUnit(t *testing.T, path string) (unitFile, string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u, section := unitFile{}, ""
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, "\\") {
				t.Fatalf("%s:%d: not a Key=value setting in a section: %q", path, n+1, line)
			}
			u[section+"."+k] = append(u[section+"."+k], v)
		}
	}
	return u, string(data)
}

// TestServiceFiles: the shipped units and the launchd agent are what the
// README says: both units start /usr/local/bin/veilchain (run as a user
// unit at login; serve as a system unit keeping its key in its
// StateDirectory), the system unit carries the hardening, and the plist
// is a well-formed launchd plist that starts the same binary with run.
func TestServiceFiles(t *testing.T) {
	user, _ := readUnit(t, "../dist/systemd/veilchain.service")
	for key, want := range map[string]string{
		"Service.ExecStart":    binaryPath + " run",
		"Service.ExecReload":   "/bin/kill -HUP $MAINPID",
		"Service.Restart":      "on-failure",
		"Install.WantedBy":     "default.target", // a user unit: at login
		"Unit.StartLimitBurst": "3",
	} {
		if got := user[key]; !slices.Equal(got, []string{want}) {
			t.Errorf("veilchain.service %s = %q, want %q", key, got, want)
		}
	}
	serve, _ := readUnit(t, "../dist/systemd/veilchain-serve.service")
	for key, want := range map[string]string{
		"Service.ExecStart":               binaryPath + " serve --state-dir ${STATE_DIRECTORY} $VEILCHAIN_SERVE_FLAGS",
		"Service.ExecReload":              "/bin/kill -HUP $MAINPID",
		"Service.StateDirectory":          "veilchain-serve",
		"Service.DynamicUser":             "yes",
		"Service.NoNewPrivileges":         "yes",
		"Service.ProtectSystem":           "strict",
		"Service.ProtectHome":             "yes",
		"Service.PrivateTmp":              "yes",
		"Service.CapabilityBoundingSet":   "",
		"Service.AmbientCapabilities":     "",
		"Service.RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"Service.Environment":             `"VEILCHAIN_SERVE_FLAGS=--listen 127.0.0.1:9001"`, // loopback until told otherwise
		"Service.EnvironmentFile":         "-/etc/veilchain/serve.env",
		"Install.WantedBy":                "multi-user.target",
	} {
		if got := serve[key]; !slices.Equal(got, []string{want}) {
			t.Errorf("veilchain-serve.service %s = %q, want %q", key, got, want)
		}
	}

	agent := readPlist(t, "../dist/launchd/org.veilchain.run.plist")
	for key, want := range map[string]any{
		"Label":             "org.veilchain.run", // the file's name, as launchctl expects
		"ProgramArguments":  []any{binaryPath, "run"},
		"RunAtLoad":         true,
		"KeepAlive":         map[string]any{"SuccessfulExit": false}, // restarted only after a failure
		"Umask":             int64(0o077),
		"StandardErrorPath": "/Users/USERNAME/Library/Logs/veilchain.log",
	} {
		if got := fmt.Sprint(agent[key]); got != fmt.Sprint(want) {
			t.Errorf("org.veilchain.run.plist %s = %s, want %s", key, got, want)
		}
	}
	// The install line in the plist's comment fills in USERNAME.
	if data, _ := os.ReadFile("../dist/launchd/org.veilchain.run.plist"); !bytes.Contains(data, []byte(`sed "s|/Users/USERNAME|$HOME|"`)) {
		t.Error("the plist's install steps do not replace /Users/USERNAME")
	}
}

// readPlist decodes an XML property list (dict, array, string, integer,
// true, false), failing on anything not well-formed or not a plist.
func readPlist(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	var doctype bool
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("%s: no <plist>: %v", path, err)
		}
		switch tok := tok.(type) {
		case xml.Directive:
			doctype = strings.HasPrefix(string(tok), `DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN"`)
		case xml.StartElement:
			if tok.Name.Local != "plist" || !slices.Contains(tok.Attr, xml.Attr{Name: xml.Name{Local: "version"}, Value: "1.0"}) || !doctype {
				t.Fatalf("%s: root <%s %v> (doctype %v), want <plist version=\"1.0\"> after Apple's DOCTYPE", path, tok.Name.Local, tok.Attr, doctype)
			}
			v, err := plistValue(d, nil)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%s: the plist holds %T, want a dict", path, v)
			}
			if end, err := nextElement(d); err != nil || end != nil {
				t.Fatalf("%s: after the dict: %v %v, want </plist>", path, end, err)
			}
			for { // and nothing but comments and space after it
				tok, err := d.Token()
				if err == io.EOF {
					return m
				}
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				if cd, ok := tok.(xml.CharData); !ok && !isComment(tok) || ok && len(bytes.TrimSpace(cd)) > 0 {
					t.Fatalf("%s: %v after </plist>", path, tok)
				}
			}
		}
	}
}

func isComment(tok xml.Token) bool { _, ok := tok.(xml.Comment); return ok }

// nextElement skips space and comments to the next start element (nil at
// an end element).
func nextElement(d *xml.Decoder) (*xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			return &tok, nil
		case xml.EndElement:
			return nil, nil
		case xml.CharData:
			if len(bytes.TrimSpace(tok)) > 0 {
				return nil, fmt.Errorf("stray text %q", tok)
			}
		case xml.Comment:
		default:
			return nil, fmt.Errorf("unexpected %T", tok)
		}
	}
}

// plistValue reads one value: the element start (nil: the next one).
func plistValue(d *xml.Decoder, start *xml.StartElement) (any, error) {
	if start == nil {
		var err error
		if start, err = nextElement(d); err != nil || start == nil {
			return nil, fmt.Errorf("want a value: %v", err)
		}
	}
	switch start.Name.Local {
	case "dict":
		m := map[string]any{}
		for {
			k, err := nextElement(d)
			if err != nil {
				return nil, err
			}
			if k == nil {
				return m, nil
			}
			var key string
			if k.Name.Local != "key" || d.DecodeElement(&key, k) != nil {
				return nil, fmt.Errorf("<dict> holds <%s> where a <key> belongs", k.Name.Local)
			}
			if _, dup := m[key]; dup {
				return nil, fmt.Errorf("key %q twice", key)
			}
			if m[key], err = plistValue(d, nil); err != nil {
				return nil, fmt.Errorf("%s: %v", key, err)
			}
		}
	case "array":
		a := []any{}
		for {
			e, err := nextElement(d)
			if err != nil {
				return nil, err
			}
			if e == nil {
				return a, nil
			}
			v, err := plistValue(d, e)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
	case "string":
		var s string
		return s, d.DecodeElement(&s, start)
	case "integer":
		var s string
		if err := d.DecodeElement(&s, start); err != nil {
			return nil, err
		}
		return strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	case "true", "false":
		var s string
		if err := d.DecodeElement(&s, start); err != nil || s != "" {
			return nil, fmt.Errorf("<%s> is not empty", start.Name.Local)
		}
		return start.Name.Local == "true", nil
	}
	return nil, fmt.Errorf("<%s> is not a plist value this agent should need", start.Name.Local)
}

// installedCopy writes path's unit with the binary path replaced by bin,
// into dir, for systemd-analyze (which wants ExecStart to exist).
func installedCopy(t *testing.T, path, dir, bin string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(path))
	if err := os.WriteFile(out, bytes.ReplaceAll(data, []byte(binaryPath), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSystemdUnitsVerify: systemd-analyze verify finds nothing to say
// about either unit (it exits 0 on unknown keys and bad values, with a
// warning: any line naming the unit fails the test), and the system
// unit's hardening scores "OK" (exposure at most 2.0 of 10) in
// systemd-analyze security.
func TestSystemdUnitsVerify(t *testing.T) {
	analyze := requireProgram(t, "systemd-analyze")
	dir := t.TempDir()
	bin := veilchain(t)
	runtimeDir := t.TempDir() // the --user manager wants one
	for _, tt := range []struct {
		file string
		args []string
	}{
		{"veilchain.service", []string{"--user", "verify"}},
		{"veilchain-serve.service", []string{"verify"}},
		{"veilchain-serve.service", []string{"security", "--offline=yes", "--threshold=20"}},
	} {
		unit := installedCopy(t, "../dist/systemd/"+tt.file, dir, bin)
		cmd := exec.Command(analyze, append(tt.args, unit)...)
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runtimeDir, "SYSTEMD_LOG_COLOR=0", "LC_ALL=C")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze %s %s: %v\n%s", strings.Join(tt.args, " "), tt.file, err, out)
			continue
		}
		if tt.args[0] == "security" {
			if !regexp.MustCompile(`Overall exposure level for veilchain-serve\.service: [01]\.\d OK`).Match(out) {
				t.Errorf("systemd-analyze security: %s", out[max(0, len(out)-200):])
			}
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if strings.Contains(sc.Text(), tt.file) {
				t.Errorf("systemd-analyze %s: %s", strings.Join(tt.args, " "), sc.Text())
			} else {
				t.Logf("systemd-analyze %s (not about our unit): %s", strings.Join(tt.args, " "), sc.Text())
			}
		}
	}
}

// TestServeUnitUnderSystemd starts the shipped system unit (renamed, with
// the test's binary, flags and state directory) and drives curl through a
// front end whose one hop is it: the unit's sandbox lets serve work. It
// checks that serve runs as a user that is not root, with no
// capabilities and no_new_privs, and that its key, kept in the
// StateDirectory, has the same pin after a restart. It needs systemd as
// PID 1 (not so in most containers: then it skips, even where every
// other skip is a failure) and root.
func TestServeUnitUnderSystemd(t *testing.T) {
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		t.Skip("systemd is not PID 1 on this machine (no /run/systemd/system, as in most containers): " +
			"veilchain-serve.service cannot be started here; TestSystemdUnitsVerify checks its text")
	}
	if os.Geteuid() != 0 {
		testnet.SkipOrFail(t, "systemd is PID 1, but starting a system unit needs root")
	}
	systemctl, journalctl := requireProgram(t, "systemctl"), requireProgram(t, "journalctl")
	name := fmt.Sprintf("veilchain-serve-test-%d", os.Getpid())
	sh := func(prog string, args ...string) string {
		t.Helper()
		out, err := exec.Command(prog, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(prog), strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	journal := func() string {
		out, _ := exec.Command(journalctl, "--no-pager", "-o", "cat", "-u", name).CombinedOutput()
		return string(out)
	}

	// The binary where the sandbox can run it: PrivateTmp hides /tmp, and
	// /run is often noexec.
	binDir := "/var/lib/" + name + "-bin"
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	data, err := os.ReadFile(veilchain(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(binDir+"/veilchain", data, 0o755); err != nil {
		t.Fatal(err)
	}

	dest := newDestination(t)
	_, dnsAddr := exitDNS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hop := ln.Addr().String()
	ln.Close()
	unit, err := os.ReadFile("../dist/systemd/veilchain-serve.service")
	if err != nil {
		t.Fatal(err)
	}
	text := string(unit)
	for _, r := range [][2]string{
		{binaryPath, binDir + "/veilchain"},
		{"StateDirectory=veilchain-serve", "StateDirectory=" + name},
		{"EnvironmentFile=-/etc/veilchain/serve.env\n", ""}, // this machine's own settings stay out
		{`"VEILCHAIN_SERVE_FLAGS=--listen 127.0.0.1:9001"`, `"VEILCHAIN_SERVE_FLAGS=--listen ` + hop + ` --allow-private --resolver ` + dnsAddr + `"`},
	} {
		if strings.Count(text, r[0]) != 1 {
			t.Fatalf("veilchain-serve.service has no single %q", r[0])
		}
		text = strings.Replace(text, r[0], r[1], 1)
	}
	unitPath := "/run/systemd/system/" + name + ".service"
	if err := os.WriteFile(unitPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command(systemctl, "stop", name).Run()
		os.Remove(unitPath)
		exec.Command(systemctl, "daemon-reload").Run()
		os.RemoveAll("/var/lib/private/" + name)
		os.Remove("/var/lib/" + name)
	})
	sh(systemctl, "daemon-reload")

	// pin starts the unit (again) and returns the pin this run printed.
	pinRE := regexp.MustCompile(`socks5s://` + regexp.QuoteMeta(hop) + `\?pin=(sha256:[A-Za-z0-9_-]{43})`)
	pin := func(verb string) string {
		t.Helper()
		sh(systemctl, verb, name)
		invocation := strings.TrimSpace(sh(systemctl, "show", "-p", "InvocationID", "--value", name))
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			out, _ := exec.Command(journalctl, "--no-pager", "-o", "cat", "_SYSTEMD_INVOCATION_ID="+invocation).CombinedOutput()
			if m := pinRE.FindSubmatch(out); m != nil {
				return string(m[1])
			}
		}
		t.Fatalf("%s printed no hop URL for %s:\n%s\n%s", name, hop, sh(systemctl, "status", "--no-pager", name), journal())
		return ""
	}
	pin1 := pin("start")

	pid := strings.TrimSpace(sh(systemctl, "show", "-p", "MainPID", "--value", name))
	statusFile, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	status := string(statusFile)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^Uid:\s+[1-9]\d*\s`), // a dynamic user, not root
		regexp.MustCompile(`(?m)^CapBnd:\s+0+$`),
		regexp.MustCompile(`(?m)^CapEff:\s+0+$`),
		regexp.MustCompile(`(?m)^NoNewPrivs:\s+1$`),
	} {
		if !want.MatchString(status) {
			t.Errorf("serve's /proc/%s/status does not match %s:\n%s", pid, want, status)
		}
	}

	run := start(t, "run", "--socks", "127.0.0.1:0", "--http", "", "--hop", "socks5s://"+hop+"?pin="+pin1, "--log-format", "json")
	front := run.waitFor(t, "SOCKS5 front end listening")["addr"].(string)
	if out := curlGet(t, front, "http://"+destName+":"+dest.port+"/"); !strings.HasPrefix(out, "peer 127.0.0.1:") {
		t.Fatalf("destination answered %q through the unit", out)
	}

	if pin2 := pin("restart"); pin2 != pin1 {
		t.Errorf("after a restart the hop's pin is %s, was %s: the key did not persist in the StateDirectory", pin2, pin1)
	}
}
