package main

import (
	"cmp"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/veilchain/veilchain/configs"
)

func envCommand() *cli.Command {
	return &cli.Command{
		Name:  "env",
		Usage: "print the shell lines that put a shell, and what it starts, behind a listener",
		Description: "Sets ALL_PROXY/all_proxy (socks5h://: names go to the proxy), http_proxy, https_proxy, HTTP_PROXY,\n" +
			"HTTPS_PROXY (http://) and an empty NO_PROXY/no_proxy. Programs that honour these variables then use\n" +
			"the listener; others do not (see veilchain exec --force). Examples:\n" +
			"  eval \"$(veilchain env -c my.yaml)\"            sh, bash, zsh\n" +
			"  veilchain env --shell fish | source            fish\n" +
			"  veilchain env --shell powershell | Invoke-Expression",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "YAML config `FILE`"},
			&cli.StringFlag{Name: "listener", Usage: "the listener `NAME`", DefaultText: "the first listener"},
			&cli.StringFlag{Name: "shell", Usage: "sh, fish, powershell or cmd", DefaultText: "from $SHELL; powershell on Windows"},
		},
		Action: envAction,
	}
}

func envAction(c *cli.Context) error {
	shell := c.String("shell")
	if shell == "" {
		shell = defaultShell()
	}
	if !slices.Contains([]string{"sh", "fish", "powershell", "cmd"}, shell) {
		return fmt.Errorf("--shell %q: want sh, fish, powershell or cmd", shell)
	}
	cfg, err := configs.Default(), error(nil)
	if path := c.String("config"); path != "" {
		if cfg, err = configs.Load(path); err != nil {
			return err
		}
	}
	l, err := findListener(cfg, c.String("listener"))
	if err != nil {
		return err
	}
	socksAddr, httpAddr := cmp.Or(l.Socks, l.Mixed), cmp.Or(l.HTTP, l.Mixed)
	return writeEnv(c.App.Writer, shell, l.Name, l.Auth, socksAddr, httpAddr)
}

// findListener is the listener named name, or the first if name is "".
func findListener(cfg *configs.Config, name string) (*configs.Listener, error) {
	if name == "" {
		return &cfg.Listeners[0], nil
	}
	if i := slices.IndexFunc(cfg.Listeners, func(l configs.Listener) bool { return l.Name == name }); i >= 0 {
		return &cfg.Listeners[i], nil
	}
	var names []string
	for _, l := range cfg.Listeners {
		names = append(names, l.Name)
	}
	return nil, fmt.Errorf("--listener: no listener named %q (the config has %s)", name, strings.Join(names, ", "))
}

func defaultShell() string {
	if runtime.GOOS == "windows" {
		return "powershell"
	}
	if filepath.Base(os.Getenv("SHELL")) == "fish" {
		return "fish"
	}
	return "sh"
}

// proxyVars are the conventional proxy variables for front ends at
// socksAddr and httpAddr (either may be ""; not both). With auth, the URLs
// carry USER:PASSWORD for the user to fill in.
func proxyVars(socksAddr, httpAddr string, auth bool) [][2]string {
	cred := ""
	if auth {
		cred = "USER:PASSWORD@"
	}
	socksURL, httpURL := "", ""
	if socksAddr != "" {
		socksURL = "socks5h://" + cred + clientAddr(socksAddr)
	}
	if httpAddr != "" {
		httpURL = "http://" + cred + clientAddr(httpAddr)
	}
	// A listener with one kind of front end serves both sets of variables
	// with it: curl, git and most others take socks5h:// in http_proxy, and
	// an http:// ALL_PROXY works for everything that tunnels with CONNECT.
	// Leaving one set out would let programs reading only it go direct.
	all, web := cmp.Or(socksURL, httpURL), cmp.Or(httpURL, socksURL)
	return [][2]string{
		{"ALL_PROXY", all}, {"all_proxy", all},
		{"http_proxy", web}, {"https_proxy", web}, {"HTTP_PROXY", web}, {"HTTPS_PROXY", web},
		{"NO_PROXY", ""}, {"no_proxy", ""},
	}
}

// clientAddr is where a client on this machine reaches a front end
// bound at addr: an unspecified host (0.0.0.0, ::, "") becomes loopback.
func clientAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	ip := net.ParseIP(host)
	switch {
	case host == "" || ip != nil && ip.IsUnspecified() && ip.To4() != nil:
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// writeEnv prints the variables in shell's syntax.
func writeEnv(w io.Writer, shell, listener string, auth bool, socksAddr, httpAddr string) error {
	if socksAddr == "" && httpAddr == "" {
		return fmt.Errorf("listener %q has neither a SOCKS nor an HTTP front end", listener)
	}
	comment := "#"
	if shell == "cmd" {
		comment = "REM"
	}
	fmt.Fprintf(w, "%s veilchain: programs that honour these variables use listener %s\n", comment, listener)
	if auth {
		fmt.Fprintf(w, "%s listener %s requires a user: replace USER:PASSWORD (percent-encode @ : / in them)\n", comment, listener)
	}
	for _, v := range proxyVars(socksAddr, httpAddr, auth) {
		switch shell {
		case "sh":
			fmt.Fprintf(w, "export %s=%s\n", v[0], shQuote(v[1]))
		case "fish":
			fmt.Fprintf(w, "set -gx %s %s\n", v[0], shQuote(v[1]))
		case "powershell":
			fmt.Fprintf(w, "$env:%s = '%s'\n", v[0], strings.ReplaceAll(v[1], "'", "''"))
		case "cmd":
			fmt.Fprintf(w, "set \"%s=%s\"\n", v[0], v[1])
		}
	}
	return nil
}

// shQuote quotes s in single quotes for sh and fish; a quote inside
// ends the quoting, is written escaped, and quoting starts again.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
