package configs

import (
	"bytes"
	_ "embed"
	"errors"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

//go:embed starter.yaml
var starterYAML []byte

// Starter is the commented config `veilchain init` writes: the default's
// listeners and a chain of two layered hops whose URLs hold Placeholder.
func Starter() []byte { return bytes.Clone(starterYAML) }

// Placeholder stands for the pin in the starter's hop URLs, where the user
// pastes the URL `veilchain serve` printed. It is a well-formed pin (43
// base64url characters), so the starter loads and builds like any config,
// and a hop that kept it would fail its TLS check, since no key has it;
// Unfinished refuses it first, saying what to do.
const Placeholder = "PASTE-THE-PIN-GIVEN-BY-VEILCHAIN-SERVE-HERE"

// UserFile is where the user's config lives when no -c names one:
// veilchain/config.yaml in the platform's config dir (os.UserConfigDir:
// $XDG_CONFIG_HOME or ~/.config on Linux and FreeBSD, ~/Library/Application
// Support on macOS, %AppData% on Windows).
func UserFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "veilchain", "config.yaml"), nil
}

// File is the name the config was loaded as: its path, or "(embedded
// default)".
func (c *Config) File() string { return c.file }

// Unfinished reports every hop that still holds the starter's
// Placeholder, with its file:line, or nil: run and check call it after
// loading, so "not filled in yet" is a message that says which file to
// edit and how, not a failed hop.
func (c *Config) Unfinished() error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(c.Chains)) {
		for i, h := range c.Chains[name].Hops {
			for _, raw := range h.URLs() {
				if !strings.Contains(raw, Placeholder) {
					continue
				}
				shown := raw
				if u, err := url.Parse(raw); err == nil {
					shown = u.Redacted()
				}
				errs = append(errs, c.Errorf([]any{"chains", name, "hops", i}, "%s is the starter's placeholder", shown))
			}
		}
	}
	if errs == nil {
		return nil
	}
	return errors.Join(append([]error{errors.New(c.file + " still has placeholder hops: edit it, and replace each with " +
		"the URL `veilchain serve` printed on that machine (paste the whole URL, then fill in HOST, and USER:PASSWORD for the exit)")}, errs...)...)
}
