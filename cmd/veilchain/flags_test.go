package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		{[]string{"run", "-c", file, "--socks", "1090"}, "c.yaml:2: log.format"},
		{[]string{"check", "-c", file}, "c.yaml:2: log.format"},
	} {
		_, err := runApp(tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "(embedded default)") {
			t.Errorf("veilchain %q: err = %v, want %q", tt.args, err, tt.want)
		}
	}
}
