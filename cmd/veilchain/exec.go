package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/configs"
	"github.com/veilchain/veilchain/httpproxy"
	"github.com/veilchain/veilchain/policy"
	"github.com/veilchain/veilchain/socks"
)

func execCommand() *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Usage:     "run one program through the chain, and exit with its status",
		ArgsUsage: "-- PROGRAM [ARGS...]",
		Description: "Uses the veilchain already running for the listener (its addresses answer as veilchain), or else\n" +
			"runs the listener's front ends in this process, on free loopback ports, for the program's lifetime.\n" +
			"The program gets the proxy variables of `veilchain env` (ALL_PROXY=socks5h://..., http_proxy, ...);\n" +
			"programs that ignore them need --force, which runs the program under proxychains4 (installed\n" +
			"separately) with a private config whose one proxy is veilchain's SOCKS port. Standard input and\n" +
			"output are the program's; SIGINT and SIGTERM reach it. Example: veilchain exec -- curl https://example.com/",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "YAML config `FILE`"},
			&cli.StringFlag{Name: "listener", Usage: "the listener `NAME` whose chain the program uses", DefaultText: "the first listener"},
			&cli.BoolFlag{Name: "force", Usage: "run the program under proxychains4, for programs that ignore proxy variables"},
		},
		Action: execAction,
	}
}

func execAction(c *cli.Context) error {
	code, err := execProgram(c)
	if err != nil {
		return err
	}
	if code != 0 {
		os.Exit(code) // everything of ours is closed by now
	}
	return nil
}

// execProgram runs the program and returns its exit status (128+N when a
// signal N ended it, as shells report it).
func execProgram(c *cli.Context) (int, error) {
	if c.NArg() == 0 {
		return 0, errors.New("exec needs a program: veilchain exec [-c FILE] [--listener NAME] [--force] -- PROGRAM [ARGS...]")
	}
	cfg, err := loadUserConfig(c)
	if err != nil {
		return 0, err
	}
	l, err := findListener(cfg, c.String("listener"))
	if err != nil {
		return 0, err
	}
	if l.Auth {
		return 0, fmt.Errorf("listener %q requires a user (auth: true), and exec cannot log in for the program: "+
			"use a listener without auth, or give the program its proxy with the user in it", l.Name)
	}
	var proxychains string
	if c.Bool("force") {
		if proxychains, err = exec.LookPath("proxychains4"); err != nil {
			return 0, errors.New("--force runs the program under proxychains4, which is not installed " +
				"(Debian and Ubuntu: apt-get install proxychains4); without --force the program gets only the proxy variables")
		}
	}
	socksAddr, httpAddr, stop, err := frontEndsFor(cfg, l)
	if err != nil {
		return 0, err
	}
	defer stop()

	name, args := c.Args().First(), c.Args().Tail()
	if proxychains != "" {
		dir, conf, err := proxychainsConf(socksAddr, httpAddr)
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
		name, args = proxychains, append([]string{"-q", "-f", conf, name}, args...)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = withProxyVars(os.Environ(), socksAddr, httpAddr)

	// Registered before the program starts, and kept until it has ended:
	// while a channel is registered, these signals do not end veilchain
	// (which must outlive the program to carry its connections).
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("exec: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				if !deliveredToProgram(s) {
					cmd.Process.Signal(s) // an error means it has just exited
				}
			case <-exited:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(exited)
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return exitErr.ExitCode(), nil
	}
	return 0, fmt.Errorf("exec: %w", err)
}

// withProxyVars is env with every proxy variable replaced by veilchain's.
func withProxyVars(env []string, socksAddr, httpAddr string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "all_proxy", "http_proxy", "https_proxy", "no_proxy":
			continue
		}
		out = append(out, kv)
	}
	for _, v := range proxyVars(socksAddr, httpAddr, false) {
		out = append(out, v[0]+"="+v[1])
	}
	return out
}

// frontEndsFor returns the addresses of front ends for listener l: those
// of a veilchain already running for it, or else of front ends started
// here on free loopback ports, which stop() ends.
func frontEndsFor(cfg *configs.Config, l *configs.Listener) (socksAddr, httpAddr string, stop func(), err error) {
	for _, a := range []struct {
		addr *string
		conf string
	}{{&socksAddr, cmp.Or(l.Socks, l.Mixed)}, {&httpAddr, cmp.Or(l.HTTP, l.Mixed)}} {
		if a.conf == "" || strings.HasSuffix(a.conf, ":0") {
			continue
		}
		if addr := clientAddr(a.conf); isVeilchain(addr) {
			*a.addr = addr
		}
	}
	if socksAddr != "" || httpAddr != "" {
		return socksAddr, httpAddr, func() {}, nil
	}
	return startPrivateFrontEnds(cfg, l)
}

// isVeilchain reports whether a veilchain front end answers at addr:
// both answer a request for "/" (on the SOCKS port a wrong-port answer, on
// the HTTP port a 400) naming veilchain.
func isVeilchain(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		return false
	}
	b, _ := io.ReadAll(io.LimitReader(conn, 4096))
	return bytes.Contains(b, []byte("veilchain"))
}

// startPrivateFrontEnds runs l's front ends as run would, but on free
// loopback ports, without its DNS front end and with no other listener.
// Logs go to stderr at error level (debug if the config asks for it):
// the program's own stderr is shared.
func startPrivateFrontEnds(cfg *configs.Config, l *configs.Listener) (socksAddr, httpAddr string, stop func(), err error) {
	own := *l
	own.Socks, own.HTTP, own.Mixed, own.DNS = "127.0.0.1:0", "127.0.0.1:0", "", ""
	private := *cfg
	private.Listeners = []configs.Listener{own}
	level := "error"
	if cfg.Log.Level == "debug" {
		level = "debug"
	}
	log, err := newLogger(os.Stderr, level, cfg.Log.Format)
	if err != nil {
		return "", "", nil, err
	}
	log = log.With("exec", true)
	loops := &chain.LoopGuard{}
	b, err := build(&private, log, loops)
	if err != nil {
		return "", "", nil, err
	}
	router, users := &policy.Router{}, &policy.Users{}
	checks, stopChecks := context.WithCancel(context.Background())
	b.apply(checks, router, users)
	dialer, _ := frontDialer(&private, router, log)
	servers, err := startFrontEnds(&private, dialer, users, loops, nil, false, nil, log)
	closeAll := func() {
		for _, s := range servers {
			s.ln.Close()
		}
		stopChecks()
	}
	if err != nil {
		closeAll()
		return "", "", nil, err
	}
	var listening []net.Addr
	for _, s := range servers {
		listening = append(listening, s.ln.Addr())
		switch s.srv.(type) {
		case *socks.Server:
			socksAddr = s.ln.Addr().String()
		case *httpproxy.Server:
			httpAddr = s.ln.Addr().String()
		}
	}
	if err := refuseLoops(&private, listening); err != nil {
		closeAll()
		return "", "", nil, err
	}
	serving, stopServing := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The program has ended when this stops: what is left belongs to
		// processes it left behind, which get a second, then are cut off.
		serveUntilDone(serving, slog.New(slog.DiscardHandler), time.Second, servers)
	}()
	return socksAddr, httpAddr, func() {
		stopServing()
		<-done
		stopChecks()
	}, nil
}

// proxychainsConf writes proxychains4's config for --force in a private
// temp dir (removed by the caller): strict_chain, proxy_dns, one proxy,
// veilchain's SOCKS port; and that port and the HTTP one as localnet,
// so that a program which also honours the proxy variables reaches them
// itself instead of through a chain to its own front end.
func proxychainsConf(socksAddr, httpAddr string) (dir, file string, err error) {
	if socksAddr == "" {
		return "", "", errors.New("--force: the listener has no SOCKS front end, and proxychains4 needs one")
	}
	host, port, _ := net.SplitHostPort(socksAddr)
	if ip := net.ParseIP(host); ip == nil || ip.To4() == nil {
		return "", "", fmt.Errorf("--force: proxychains4 needs an IPv4 SOCKS address, and the listener's is %s", socksAddr)
	}
	var b strings.Builder
	b.WriteString("# veilchain exec --force: one program's proxychains4 config, removed when it exits\n" +
		"strict_chain\nproxy_dns\nquiet_mode\n")
	for _, a := range []string{socksAddr, httpAddr} {
		if h, p, err := net.SplitHostPort(a); err == nil && net.ParseIP(h).To4() != nil {
			fmt.Fprintf(&b, "localnet %s:%s/255.255.255.255\n", h, p)
		}
	}
	fmt.Fprintf(&b, "[ProxyList]\nsocks5 %s %s\n", host, port)
	if dir, err = os.MkdirTemp("", "veilchain-exec-"); err != nil { // mode 0700
		return "", "", fmt.Errorf("--force: %w", err)
	}
	file = filepath.Join(dir, "proxychains.conf")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("--force: %w", err)
	}
	return dir, file, nil
}
