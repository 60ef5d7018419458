package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/configs"
)

// TestInit: init writes the starter to the user's config file, the
// directory 0700 and the file 0600, and prints the path; a second init
// refuses, naming the file, and leaves it as it was.
func TestInit(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "freebsd" {
		t.Skip("XDG_CONFIG_HOME places the config dir on Linux and FreeBSD only")
	}
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config")) // not there yet: init makes it
	file := filepath.Join(home, "config", "veilchain", "config.yaml")
	out, err := runApp("init")
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if first, _, _ := strings.Cut(out, "\n"); first != file {
		t.Errorf("init printed %q first, want the path %s", first, file)
	}
	data, err := os.ReadFile(file)
	if err != nil || string(data) != string(configs.Starter()) {
		t.Fatalf("init wrote %q, %v; want the starter", data, err)
	}
	for path, mode := range map[string]os.FileMode{file: 0o600, filepath.Dir(file): 0o700 | os.ModeDir} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v, %v; want %v", path, fi.Mode(), err, mode)
		}
	}

	os.WriteFile(file, []byte("# mine\n"), 0o600)
	out, err = runApp("init")
	if err == nil || !strings.Contains(err.Error(), file+" exists already") {
		t.Errorf("second init: %v, want a refusal naming %s\n%s", err, file, out)
	}
	if data, _ := os.ReadFile(file); string(data) != "# mine\n" {
		t.Errorf("second init changed the file to %q", data)
	}
}

// TestStarterFilledInBuilds: the starter with the URLs serve prints
// pasted in builds the chain run would use: two layered, pinned hops.
func TestStarterFilledInBuilds(t *testing.T) {
	pin := "sha256:0SRu79h_KmHoroLP6kwxIMvyAWhsd29pRcOYfRhzbWA"
	filled := strings.ReplaceAll(string(configs.Starter()), "sha256:"+configs.Placeholder, pin)
	cfg, err := configs.Parse("filled.yaml", []byte(filled))
	if err != nil {
		t.Fatal(err)
	}
	b, err := build(cfg, slog.New(slog.DiscardHandler), &chain.LoopGuard{})
	if err != nil {
		t.Fatalf("the filled-in starter does not build: %v", err)
	}
	// Unfilled, it builds too (the placeholder is a well-formed pin that no
	// key has): only Unfinished, which run and check call, refuses it.
	unfilled, err := configs.Parse("starter.yaml", configs.Starter())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := build(unfilled, slog.New(slog.DiscardHandler), &chain.LoopGuard{}); err != nil {
		t.Errorf("the starter does not build: %v", err)
	}
	c, ok := b.chains["default"].(*chain.Chain)
	if !ok || len(c.Hops) != 2 || c.Hops[0].Addr() != "hop1.example:9001" || c.Hops[1].Addr() != "exit.example:9001" {
		t.Fatalf("chain = %#v", b.chains["default"])
	}
	for i, h := range c.Hops {
		if s, ok := h.(*chain.SOCKS5); !ok || s.TLS == nil || s.Pin != pin {
			t.Errorf("hop %d = %#v, want a layered SOCKS5 hop pinned to %s", i, h, pin)
		}
	}
	if s, _ := c.Hops[1].(*chain.SOCKS5); s == nil || s.User != "USER" || s.Password != "PASSWORD" {
		t.Errorf("the exit's credentials are not USER:PASSWORD: %#v", c.Hops[1])
	}
}
