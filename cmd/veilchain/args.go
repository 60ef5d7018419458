package main

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// noArgs refuses positional arguments to a command that takes none:
// ignored, `veilchain run socks5://h:1080` would run with no hops at all.
// The error guesses the flag that was meant (--hop for a URL, -c for a
// YAML file, --listen for an address), with any password in it hidden.
// It is every such command's Before (see newApp).
func noArgs(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 {
		return nil
	}
	name := c.Command.Name
	var hint []string
	for _, a := range args {
		flag, shown := guessFlag(c.Command, a)
		if flag == "" {
			hint = nil
			break
		}
		hint = append(hint, flag+" "+shown)
	}
	if hint == nil {
		// The arguments are not shown: one may be a password.
		return fmt.Errorf("%s takes no arguments, and got %d (see veilchain help %s)", name, len(args), name)
	}
	return fmt.Errorf("%s takes no arguments: did you mean %s?", name, strings.Join(hint, " "))
}

// guessFlag returns the flag of cmd that arg was probably meant for, and
// arg as it may be shown (without a password), or "" if it has no guess.
func guessFlag(cmd *cli.Command, arg string) (flag, shown string) {
	has := func(name string) bool {
		return slices.ContainsFunc(cmd.Flags, func(f cli.Flag) bool { return slices.Contains(f.Names(), name) })
	}
	switch {
	case strings.Contains(arg, "://") && has("hop"):
		if u, err := url.Parse(arg); err == nil {
			return "--hop", u.Redacted()
		}
		return "--hop", "URL"
	case (strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml")) && has("config"):
		return "-c", arg
	case has("listen"):
		if _, _, err := net.SplitHostPort(arg); err == nil {
			return "--listen", arg
		}
	}
	return "", ""
}
