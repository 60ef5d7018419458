package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/veilchain/veilchain/configs"
)

// A bad flag value is blamed on the flag, not on the config it overrides;
// a bad value in a file still names the file and line.
func TestBadFlagValuesNameTheFlag(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(file, []byte("log:\n  format: loud\n"), 0o600)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--socks", "1090"}, `--socks: listeners[0].socks: "1090" is not host:port`},
		{[]string{"run", "--http", "localhost"}, `--http: listeners[0].http: "localhost" is not host:port`},
		{[]string{"run", "--listen", "9000"}, `--listen: listeners[0].mixed: "9000" is not host:port`},
		{[]string{"run", "--dns", "5353"}, `--dns: listeners[0].dns: "5353" is not host:port`},
		{[]string{"run", "--socks", "", "--http", ""}, `--socks: listeners[0].socks: missing`},
		{[]string{"run", "--log-level", "loud"}, `--log-level`},
		{[]string{"run", "--hop", "socks5://127.0.0.1:1", "--prebuild", "-1"}, `--prebuild: chains.default.prebuild: must be between 0 (off) and 64`},
		{[]string{"run", "--hop", "socks5://127.0.0.1:1", "--prebuild-idle", "1ms"}, `--prebuild-idle: chains.default.prebuild_idle: must be at least 1s`},
		{[]string{"run", "-c", file, "--socks", "1090"}, "c.yaml:2: log.format"},
		{[]string{"check", "-c", file}, "c.yaml:2: log.format"},
	} {
		_, err := runApp(tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "(embedded default)") {
			t.Errorf("veilchain %q: err = %v, want %q", tt.args, err, tt.want)
		}
	}
}

// loadWith runs loadConfig on the run command's flags in args.
func loadWith(t *testing.T, args ...string) (*configs.Config, error) {
	t.Helper()
	app := newApp()
	var cfg *configs.Config
	var err error
	for _, cmd := range app.Commands {
		cmd.Action = func(c *cli.Context) error {
			var file string
			if file, _, err = configFile(c); err == nil {
				cfg, err = loadConfig(c, file)
			}
			return nil
		}
	}
	if rerr := app.Run(append([]string{"veilchain", "run"}, args...)); rerr != nil {
		t.Fatal(rerr)
	}
	return cfg, err
}

// A proxy address given by flag replaces the first listener's addresses;
// it does not open beside them.
func TestListenerFlagsReplaceTheDefaultAddresses(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(file, []byte("listeners:\n  - name: l\n    socks: 127.0.0.1:2080\n    http: 127.0.0.1:2118\n    chain: c\n"), 0o600)
	for _, tt := range []struct {
		args               []string
		socks, http, mixed string
	}{
		{nil, "127.0.0.1:1080", "127.0.0.1:8118", ""},
		{[]string{"--listen", "127.0.0.1:7000"}, "", "", "127.0.0.1:7000"},
		{[]string{"--socks", "127.0.0.1:7001"}, "127.0.0.1:7001", "", ""},
		{[]string{"--http", "127.0.0.1:7002"}, "", "127.0.0.1:7002", ""},
		{[]string{"--socks", "127.0.0.1:7001", "--http", "127.0.0.1:7002"}, "127.0.0.1:7001", "127.0.0.1:7002", ""},
		{[]string{"-c", file}, "127.0.0.1:2080", "127.0.0.1:2118", ""},
		{[]string{"-c", file, "--listen", "127.0.0.1:7000"}, "", "", "127.0.0.1:7000"},
	} {
		cfg, err := loadWith(t, tt.args...)
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if l := cfg.Listeners[0]; l.Socks != tt.socks || l.HTTP != tt.http || l.Mixed != tt.mixed {
			t.Errorf("%q: socks %q http %q mixed %q; want %q %q %q", tt.args, l.Socks, l.HTTP, l.Mixed, tt.socks, tt.http, tt.mixed)
		}
	}
}

// --prebuild sets the first listener's chain's prebuild, --hop or not.
func TestPrebuildFlag(t *testing.T) {
	cfg, err := loadWith(t, "--hop", "socks5://127.0.0.1:1", "--prebuild", "3", "--prebuild-idle", "8s")
	if err != nil {
		t.Fatal(err)
	}
	if ch := cfg.Chains[cfg.Listeners[0].Chain]; ch.Prebuild != 3 || ch.PrebuildIdle != 8*time.Second {
		t.Fatalf("prebuild = %d, prebuild_idle = %v; want 3, 8s", ch.Prebuild, ch.PrebuildIdle)
	}
}
