package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestMain gives the tests a config dir of their own: without -c, run and
// check read the user's config file, never the developer's here.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "veilchain-cmd-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runCaptured runs the real app with args, each command's action replaced
// by one that records the values of the named slice flag.
func runCaptured(t *testing.T, flag string, args ...string) ([]string, error) {
	t.Helper()
	app := newApp()
	var got []string
	for _, cmd := range app.Commands {
		cmd.Action = func(c *cli.Context) error {
			got = c.StringSlice(flag)
			return nil
		}
	}
	err := app.Run(append([]string{"veilchain"}, args...))
	return got, err
}

// A comma inside a slice flag's value is part of it (a password, say),
// not a separator: several values are given by repeating the flag.
func TestSliceFlagsKeepCommas(t *testing.T) {
	for _, tt := range []struct {
		flag string
		args []string
		want []string
	}{
		{"hop", []string{"run", "--hop", "socks5://alice:se,cret@h:9002"}, []string{"socks5://alice:se,cret@h:9002"}},
		{"hop", []string{"run", "--hop", "socks5://a:1", "--hop", "socks5://b:se,c@h:2"}, []string{"socks5://a:1", "socks5://b:se,c@h:2"}},
		{"hop", []string{"check", "--hop", "http://u:p,q@h:3128"}, []string{"http://u:p,q@h:3128"}},
		{"user", []string{"serve", "--user", "alice:se,cret"}, []string{"alice:se,cret"}},
		{"user", []string{"serve", "--user", "a:1,2", "--user", "b:3"}, []string{"a:1,2", "b:3"}},
		{"allow", []string{"serve", "--allow", "10.0.0.0/8", "--allow", "192.168.0.0/16"}, []string{"10.0.0.0/8", "192.168.0.0/16"}},
	} {
		got, err := runCaptured(t, tt.flag, tt.args...)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%q: --%s = %q, %v; want %q", tt.args, tt.flag, got, err, tt.want)
		}
	}
}

// runApp runs the real app with args and returns what it printed.
func runApp(args ...string) (string, error) {
	app := newApp()
	var out strings.Builder
	app.Writer, app.ErrWriter = &out, &out
	err := app.Run(append([]string{"veilchain"}, args...))
	return out.String(), err
}

// help works as a command, an unknown command is an error that names the
// commands, and the version is one flag or command away.
func TestHelpVersionAndUnknownCommands(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		out     string // printed, when the command succeeds
		wantErr string // part of the error, when it fails
	}{
		{nil, "COMMANDS:", ""},
		{[]string{"help"}, "COMMANDS:", ""},
		{[]string{"help", "run"}, "veilchain run - run the local SOCKS5 front end", ""},
		{[]string{"help", "serve"}, "--allow-private", ""},
		{[]string{"run", "--help"}, "--hop URL", ""},
		{[]string{"--version"}, "veilchain ", ""},
		{[]string{"-v"}, runtime.Version(), ""},
		{[]string{"version"}, "\ncommit ", ""},
		{[]string{"bogus"}, "", `unknown command "bogus": the commands are run, serve`},
		{[]string{"help", "bogus"}, "", "No help topic for 'bogus'"},
	} {
		out, err := runApp(tt.args...)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("veilchain %q: err = %v, want %q", tt.args, err, tt.wantErr)
		case tt.wantErr == "" && err != nil:
			t.Errorf("veilchain %q: %v\n%s", tt.args, err, out)
		case !strings.Contains(out, tt.out):
			t.Errorf("veilchain %q printed:\n%s\nwant %q in it", tt.args, out, tt.out)
		}
	}
}

func TestVersionText(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "true"}}
	for _, tt := range []struct {
		ld   string
		info *debug.BuildInfo
		want string
	}{
		{"", nil, "veilchain devel\ncommit unknown\n" + runtime.Version() + " "},
		{"", &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "(devel)"}, Settings: vcs}, "veilchain devel\ncommit 0123abcd+modified\ngo1.99 "},
		{"v1.2.0", &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "(devel)"}, Settings: vcs[:1]}, "veilchain v1.2.0\ncommit 0123abcd\ngo1.99 "},
		{"", &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v1.1.0"}}, "veilchain v1.1.0\ncommit unknown\ngo1.99 "},
	} {
		if got := versionText(tt.ld, tt.info); !strings.HasPrefix(got, tt.want) || !strings.HasSuffix(got, runtime.GOOS+"/"+runtime.GOARCH+"\n") {
			t.Errorf("versionText(%q, %+v) = %q, want it to start with %q", tt.ld, tt.info, got, tt.want)
		}
	}
}

// Positional arguments are refused, not ignored, with the flag they were
// probably meant for; a password in them is not repeated.
func TestPositionalArgumentsRefused(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "socks5://alice:se,cret@h:9002"}, "run takes no arguments: did you mean --hop socks5://alice:xxxxx@h:9002?"},
		{[]string{"run", "--log-level", "bogus", "socks5://a:1", "http://b:2"}, "did you mean --hop socks5://a:1 --hop http://b:2?"},
		{[]string{"run", "--log-level", "bogus", "veilchain.yaml"}, "did you mean -c veilchain.yaml?"},
		{[]string{"check", "socks5://h:1080"}, "check takes no arguments: did you mean --hop socks5://h:1080?"},
		{[]string{"serve", "--log-level", "bogus", "0.0.0.0:9001"}, "serve takes no arguments: did you mean --listen 0.0.0.0:9001?"},
		{[]string{"serve", "--log-level", "bogus", "socks5://h:1"}, "serve takes no arguments, and got 1 (see veilchain help serve)"},
		{[]string{"hash-password", "s3cr3t"}, "hash-password takes no arguments, and got 1"},
		{[]string{"version", "now"}, "version takes no arguments"},
	} {
		out, err := runApp(tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("veilchain %q: err = %v, want %q", tt.args, err, tt.want)
		}
		if err != nil && (strings.Contains(err.Error(), "se,cret") || strings.Contains(err.Error(), "s3cr3t")) || strings.Contains(out, "s3cr3t") {
			t.Errorf("veilchain %q repeated a password: %v %s", tt.args, err, out)
		}
	}
}
