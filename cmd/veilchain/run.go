package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/configs"
	"github.com/veilchain/veilchain/httpproxy"
	"github.com/veilchain/veilchain/internal/conns"
	"github.com/veilchain/veilchain/internal/stats"
	"github.com/veilchain/veilchain/internal/statuspage"
	"github.com/veilchain/veilchain/policy"
	"github.com/veilchain/veilchain/resolver"
	"github.com/veilchain/veilchain/socks"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "run the local SOCKS5 front end, sending every connection through a chain of hops",
		Description: "Flags override the config file: --socks, --http and --listen set the first listener's addresses\n" +
			"(any of them replaces all three: --listen alone opens only that port), --hop its chain.\n" +
			"Example: veilchain run --socks 127.0.0.1:1080 --hop socks5://127.0.0.1:9001 --hop socks5://user:pass@127.0.0.1:9002",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "YAML config `FILE` (see configs/example.yaml)", DefaultText: "the user's config file if it exists (veilchain init writes one), else the embedded default"},
			&cli.StringFlag{Name: "socks", Usage: "SOCKS5 listen `ADDR` of the first listener (\"\" for none)", DefaultText: "127.0.0.1:1080 or the config's"},
			&cli.StringFlag{Name: "http", Usage: "HTTP proxy listen `ADDR` of the first listener (\"\" for none)", DefaultText: "127.0.0.1:8118 or the config's"},
			&cli.StringFlag{Name: "listen", Usage: "mixed listen `ADDR` of the first listener: SOCKS4/4a/5 and HTTP on one port"},
			&cli.StringFlag{Name: "dns", Usage: "DNS front end `ADDR` of the first listener (UDP and TCP; see dns: in the config)"},
			&cli.StringSliceFlag{Name: "hop", Usage: "hop `URL`, first hop first (repeatable): socks5s://[user@]host:port?pin=... (argv is visible to other users in ps: give a password with ?password-env=NAME or ?password-file=FILE, or in a config file)"},
			&cli.BoolFlag{Name: "early-reply", Usage: "answer SOCKS and CONNECT clients of the first listener as soon as the chain's handshakes are sent (needs a ?pipeline=1 exit; a failure then closes instead of answering an error code)"},
			&cli.IntFlag{Name: "prebuild", Usage: "keep `N` circuits of the first listener's chain built ahead of time, each through every hop to the exit and past its auth, for one connection each", DefaultText: "0 (off) or the config's"},
			&cli.DurationFlag{Name: "prebuild-idle", Usage: "close and replace a circuit built ahead that waited unused this long (keep it under the hops' wait for a request)", DefaultText: "25s or the config's"},
			&cli.BoolFlag{Name: "allow-open", Usage: "allow listeners on non-loopback addresses (anyone who reaches them can use your chain)"},
			&cli.StringFlag{Name: "status", Usage: "serve the status page and Prometheus metrics (/metrics) on loopback `ADDR`, e.g. 127.0.0.1:9080 (\"\" for none)", DefaultText: "none, or the config's status:"},
			&cli.StringFlag{Name: "control", Usage: "the control socket `PATH`, for `veilchain reload` (\"\" for none)", DefaultText: controlPathText()},
			&cli.DurationFlag{Name: "handshake-timeout", Usage: "bound on each hop's and each client's handshake", DefaultText: "10s or the config's"},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error (destinations appear only at debug)", DefaultText: "info or the config's"},
			&cli.StringFlag{Name: "log-format", Usage: "text or json", DefaultText: "text or the config's"},
		},
		Action: runAction,
	}
}

func runAction(c *cli.Context) error {
	file, looked, err := configFile(c)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(c, file)
	if err != nil {
		return err
	}
	log, level, err := newLevelLogger(os.Stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	if file != "" {
		log.Info("config read", "file", file)
	} else {
		log.Info("no config file: using the embedded default and the flags", "looked_for", looked)
	}
	// Chains tell the front ends which conns are their own, so that a
	// first hop pointing back at this process is refused, not relayed.
	loops := &chain.LoopGuard{}
	b, err := build(cfg, log, loops)
	if err != nil {
		return err
	}
	router, users := &policy.Router{}, &policy.Users{Logger: log}
	// What the front ends record, for the control endpoint, the status
	// page and the metrics.
	reg := &stats.Registry{Chains: router.ChainsNow}
	reg.Started()
	checks, stopChecks := context.WithCancel(context.Background())
	defer stopChecks() // on an early return; the reload loop stops the later ones
	b.apply(checks, router, users)
	var servers []server
	var dnsServers []*resolver.Server
	// After a reload, pooled upstream connections would still use the old
	// chains: close the idle ones so new requests dial through the new.
	afterReload := func() {
		for _, s := range servers {
			if h, ok := s.srv.(*httpproxy.Server); ok {
				h.CloseIdle()
			}
		}
		for _, d := range dnsServers {
			d.CloseIdle()
		}
	}

	dialer, pool := frontDialer(cfg, router, log)
	dnsServers, err = startDNS(cfg, router, pool, c.Bool("allow-open"), log)
	defer func() {
		for _, d := range dnsServers {
			d.Shutdown(context.Background())
		}
	}()
	if err != nil {
		return err
	}
	var live atomic.Pointer[configs.Config] // the config in force, for the PAC files
	live.Store(cfg)
	servers, err = startFrontEnds(cfg, dialer, users, loops, reg, c.Bool("allow-open"), live.Load, log)
	defer func() {
		for _, s := range servers {
			s.ln.Close()
		}
	}()
	if err != nil {
		return err
	}
	var listening []net.Addr
	for _, s := range servers {
		listening = append(listening, s.ln.Addr())
	}
	if err := refuseLoops(cfg, listening); err != nil {
		return err
	}
	// Reloads start once every front end exists (afterReload reads them).
	warnFirstHopsDown(c.Context, b, log)
	running := cfg
	reload, stopReload := reloader(func() (*configs.Config, error) { return loadConfig(c, file) }, func(cfg *configs.Config) (*built, error) {
		if err := refuseLoops(cfg, listening); err != nil {
			return nil, err
		}
		b, err := build(cfg, log, loops)
		if err != nil {
			return nil, err
		}
		// What a reload cannot change is said, not silently dropped.
		if later := needsRestart(running, cfg); len(later) > 0 {
			log.Warn("reload: these changes take effect only after a restart", "fields", strings.Join(later, ", "))
		}
		if err := setLevel(level, cfg.Log.Level); err != nil {
			return nil, err
		}
		running = cfg
		live.Store(cfg)
		return b, nil
	}, b, router, users, stopChecks, afterReload, log)
	defer stopReload()
	if ctl := startControl(c, reload, reg, log); ctl != nil {
		servers = append(servers, *ctl)
	}
	page, err := startStatus(cfg.Status, cfg.StatusEchoURL, reg, c.Bool("allow-open"), users, len(cfg.Users) > 0, log)
	if err != nil {
		return err
	}
	if page != nil {
		servers = append(servers, *page)
	}
	return serveUntilDone(c.Context, log, cfg.Timeouts.ShutdownGrace, servers)
}

// startFrontEnds listens on every listener's addresses and builds its
// front ends, all dialling through dialer. On error it returns what it
// had started, for the caller to close. The HTTP front ends serve a PAC
// file made from current() (nil: cfg).
func startFrontEnds(cfg *configs.Config, dialer chain.Dialer, users *policy.Users, loops *chain.LoopGuard, reg *stats.Registry, allowOpen bool,
	current func() *configs.Config, log *slog.Logger) ([]server, error) {
	if current == nil {
		current = func() *configs.Config { return cfg }
	}
	var servers []server
	for _, l := range cfg.Listeners {
		llog := log.With("listener", l.Name)
		var auth interface {
			socks.Authenticator
			httpproxy.Authenticator
		}
		if l.Auth {
			auth = users
		}
		var pacSocks, pacHTTP string // this listener's bound addresses, for its PAC
		newSOCKS := func() frontEnd {
			s := &socks.Server{Dialer: dialer, Listener: l.Name, HandshakeTimeout: cfg.Timeouts.Handshake,
				IdleTimeout: cfg.Timeouts.TunnelIdle, EarlyReply: l.EarlyReply, Logger: llog, LoopGuard: loops, Stats: reg}
			if auth != nil {
				s.Auth = auth
			}
			return s
		}
		newHTTP := func() frontEnd {
			h := newHTTPProxy(cfg, dialer, llog)
			h.Listener = l.Name
			h.EarlyReply = l.EarlyReply
			h.LoopGuard = loops
			h.PAC = pacServer(current, l.Name, &pacSocks, &pacHTTP)
			h.Stats = reg
			if auth != nil {
				h.Auth = auth
			}
			return h
		}
		for _, fe := range []struct {
			kind, addr  string
			socks, http func() frontEnd
		}{
			{"SOCKS5", l.Socks, newSOCKS, nil},
			{"HTTP proxy", l.HTTP, nil, newHTTP},
			{"mixed SOCKS and HTTP", l.Mixed, newSOCKS, newHTTP},
		} {
			if fe.addr == "" {
				continue
			}
			if !isLoopback(fe.addr) && !l.Auth && !allowOpen {
				return servers, fmt.Errorf("listener %q: %s is not a loopback address; anyone who can reach it could use your chain. "+
					"Listen on 127.0.0.1, require users (auth: true), or give --allow-open", l.Name, fe.addr)
			}
			ln, err := conns.Listen("tcp", fe.addr)
			if err != nil {
				return servers, fmt.Errorf("listener %q: %w", l.Name, err)
			}
			if fe.socks != nil && pacSocks == "" {
				pacSocks = ln.Addr().String()
			}
			if fe.http != nil && pacHTTP == "" {
				pacHTTP = ln.Addr().String()
			}
			switch {
			case fe.socks != nil && fe.http != nil:
				socksLn, httpLn := conns.Sniff(ln, cfg.Timeouts.Handshake, llog)
				servers = append(servers, server{fe.socks(), socksLn}, server{fe.http(), httpLn})
			case fe.socks != nil:
				servers = append(servers, server{fe.socks(), ln})
			default:
				servers = append(servers, server{fe.http(), ln})
			}
			log.Info(fe.kind+" front end listening", "listener", l.Name, "addr", ln.Addr().String(), "chain", l.Chain)
		}
	}
	return servers, nil
}

// startStatus listens for the status page and metrics on addr ("" for
// none). Like the front ends, it stays on loopback unless told otherwise:
// the page shows destinations.
func startStatus(addr, echoURL string, reg *stats.Registry, allowOpen bool, users *policy.Users, haveUsers bool, log *slog.Logger) (*server, error) {
	if addr == "" {
		return nil, nil
	}
	open := !isLoopback(addr)
	if open && (!allowOpen || !haveUsers) {
		return nil, fmt.Errorf("status: %s is not a loopback address; the status page shows your destinations to anyone who reaches it. "+
			"Listen on 127.0.0.1, or give --allow-open and users: (whose logins it then asks for)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	log.Info("status page and metrics listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+"/")
	page := &statuspage.Server{Stats: reg, PID: os.Getpid()}
	if open {
		page.Auth = users.Authenticate
	}
	if echoURL != "" {
		page.ExitEcho = func(ctx context.Context, through chain.Dialer) (string, error) {
			// Through the chain only: the transport's one dialer is the
			// chain's, and no proxy from the environment.
			tr := &http.Transport{DialContext: through.DialContext, Proxy: nil}
			defer tr.CloseIdleConnections()
			return echoExit(ctx, &http.Client{Transport: tr}, echoURL)
		}
	}
	return &server{page, ln}, nil
}

// newHTTPProxy builds an HTTP front end from the config.
func newHTTPProxy(cfg *configs.Config, d chain.Dialer, log *slog.Logger) *httpproxy.Server {
	h := cfg.HTTPProxy
	return &httpproxy.Server{
		Dialer: d,
		Headers: httpproxy.HeaderPolicy{
			UserAgent: h.UserAgent, AcceptLanguage: h.AcceptLanguage, Referer: h.Referer, Drop: h.DropHeaders,
		},
		HandshakeTimeout:  cfg.Timeouts.Handshake,
		IdleTimeout:       cfg.Timeouts.Idle,
		TunnelIdleTimeout: cfg.Timeouts.TunnelIdle,
		MaxHeaderBytes:    h.MaxHeaderBytes,
		MaxURIBytes:       h.MaxURIBytes,
		Logger:            log,
	}
}

// configFile is the config file run and check read: -c's, or else the
// user's (configs.UserFile) if it exists, or else "": the embedded
// default alone. looked is where the user's file was looked for ("" if
// the platform has no config dir). It is decided once, at start: a
// reload reads the same file again.
func configFile(c *cli.Context) (file, looked string, err error) {
	if file := c.String("config"); file != "" {
		return file, "", nil
	}
	looked, err = configs.UserFile()
	if err != nil {
		return "", "", nil // no config dir (no $HOME): flags and the default only
	}
	switch _, err := os.Stat(looked); {
	case err == nil:
		return looked, looked, nil
	case errors.Is(err, fs.ErrNotExist):
		return "", looked, nil
	default: // there may be a config we cannot read: never run without it
		return "", looked, err
	}
}

// loadUserConfig is loadConfig of the file configFile finds: the one run
// would read.
func loadUserConfig(c *cli.Context) (*configs.Config, error) {
	file, _, err := configFile(c)
	if err != nil {
		return nil, err
	}
	return loadConfig(c, file)
}

// loadConfig reads file (or, if it is "", the embedded default) and
// applies the flags.
func loadConfig(c *cli.Context, file string) (*configs.Config, error) {
	cfg := configs.Default()
	if file != "" {
		var err error
		if cfg, err = configs.Load(file); err != nil {
			return nil, err
		}
	}
	// --socks, --http and --listen are the first listener's proxy
	// addresses: any of them replaces all three, so that --listen alone
	// does not leave the default's 1080 and 8118 open beside it.
	for _, flag := range []string{"socks", "http", "listen"} {
		if c.IsSet(flag) {
			l := &cfg.Listeners[0]
			l.Socks, l.HTTP, l.Mixed = "", "", ""
			cfg.SetByFlag("--"+flag, "listeners", 0, "socks") // "missing" is reported there
			break
		}
	}
	// Errors about a value a flag gave name the flag, not the file.
	first := func(flag, field string, set func(*configs.Listener)) {
		if c.IsSet(flag) {
			set(&cfg.Listeners[0])
			cfg.SetByFlag("--"+flag, "listeners", 0, field)
		}
	}
	first("socks", "socks", func(l *configs.Listener) { l.Socks = c.String("socks") })
	first("http", "http", func(l *configs.Listener) { l.HTTP = c.String("http") })
	first("listen", "mixed", func(l *configs.Listener) { l.Mixed = c.String("listen") })
	first("dns", "dns", func(l *configs.Listener) { l.DNS = c.String("dns") })
	first("early-reply", "early_reply", func(l *configs.Listener) { l.EarlyReply = c.Bool("early-reply") })
	if hops := c.StringSlice("hop"); len(hops) > 0 {
		for _, h := range hops {
			if _, err := chain.ParseHop(h); err != nil {
				return nil, fmt.Errorf("--hop: %w", err)
			}
		}
		if cfg.Chains == nil { // "chains:" with nothing under it
			cfg.Chains = map[string]configs.Chain{}
		}
		var specs []configs.Hop
		for _, h := range hops {
			specs = append(specs, configs.Hop{URL: h})
		}
		cfg.Chains[cfg.Listeners[0].Chain] = configs.Chain{Hops: specs}
		cfg.SetByFlag("--hop", "chains", cfg.Listeners[0].Chain)
	}
	for _, flag := range []string{"prebuild", "prebuild-idle"} {
		name := cfg.Listeners[0].Chain
		if ch, ok := cfg.Chains[name]; ok && c.IsSet(flag) {
			if flag == "prebuild" {
				ch.Prebuild = c.Int(flag)
			} else {
				ch.PrebuildIdle = c.Duration(flag)
			}
			cfg.Chains[name] = ch
			cfg.SetByFlag("--"+flag, "chains", name, strings.ReplaceAll(flag, "-", "_"))
		}
	}
	if c.IsSet("status") {
		cfg.Status = c.String("status")
		cfg.SetByFlag("--status", "status")
	}
	if c.IsSet("handshake-timeout") {
		if cfg.Timeouts.Handshake = c.Duration("handshake-timeout"); cfg.Timeouts.Handshake <= 0 {
			return nil, fmt.Errorf("--handshake-timeout must be positive")
		}
	}
	if c.IsSet("log-level") {
		cfg.Log.Level = c.String("log-level")
		cfg.SetByFlag("--log-level", "log", "level")
	}
	if c.IsSet("log-format") {
		cfg.Log.Format = c.String("log-format")
		cfg.SetByFlag("--log-format", "log", "format")
	}
	if _, err := newLogger(io.Discard, cfg.Log.Level, cfg.Log.Format); err != nil && (c.IsSet("log-level") || c.IsSet("log-format")) {
		return nil, fmt.Errorf("--log-level/--log-format: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Unfinished(); err != nil { // the starter, not filled in yet
		return nil, err
	}
	return cfg, nil
}

// noHops explains how to give hops; run refuses to start without them,
// since the only alternative would be connecting directly. It names the
// file that was read, or where `veilchain init` writes one.
func noHops(cfg *configs.Config) error {
	where := "in a config file:                  veilchain run -c FILE   (see configs/example.yaml)"
	if cfg.File() != "(embedded default)" {
		where = "in " + cfg.File() + ": add a chain under chains: (see configs/example.yaml)"
	} else if user, err := configs.UserFile(); err == nil {
		where += "\nor run `veilchain init`, which writes a starter config to " + user + " for you to edit"
	}
	return errors.New("no hops configured, and veilchain never connects directly unless told to.\n" +
		"Give the chain on the command line:  veilchain run --hop socks5s://HOST:PORT?pin=... [--hop ...]\n" +
		"or " + where)
}

// needsRestart names the parts of cfg that differ from running and that
// only a restart applies: listeners (addresses, auth, early replies, DNS
// front ends), timeouts and the HTTP header policy, which the front ends
// were built with, the fake-ip ranges and DNS settings, and the log format.
// Chains, rules, block lists, users and the log level are reloaded.
func needsRestart(running, cfg *configs.Config) []string {
	var out []string
	for _, f := range []struct {
		name string
		a, b any
	}{
		{"listeners", running.Listeners, cfg.Listeners},
		{"timeouts (of the front ends; the chains take the new ones)", running.Timeouts, cfg.Timeouts},
		{"http_proxy", running.HTTPProxy, cfg.HTTPProxy},
		{"dns", running.DNS, cfg.DNS},
		{"log.format", running.Log.Format, cfg.Log.Format},
		{"status", running.Status, cfg.Status},
		{"status_echo_url", running.StatusEchoURL, cfg.StatusEchoURL},
	} {
		if !reflect.DeepEqual(f.a, f.b) {
			out = append(out, f.name)
		}
	}
	return out
}

// warnFirstHopsDown probes each chain's first hop once, in the background,
// and warns about one that does not answer: it may come up later, so it
// is never a reason not to start.
func warnFirstHopsDown(ctx context.Context, b *built, log *slog.Logger) {
	for name, d := range b.chains {
		ch, ok := d.(*chain.Chain)
		if !ok || len(ch.Hops) == 0 {
			continue
		}
		go func() {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			for _, r := range ch.ProbeFirst(pctx) {
				if r.Err != "" && ctx.Err() == nil {
					log.Warn("the first hop does not answer now: connections through it fail until it does", "chain", name, "hop_addr", r.Addr, "err", r.Err)
				}
			}
		}()
	}
}
