package main

import (
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

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
