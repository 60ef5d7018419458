package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/httpproxy"
	"github.com/veilchain/veilchain/internal/conns"
	"github.com/veilchain/veilchain/internal/layer"
	"github.com/veilchain/veilchain/policy"
	"github.com/veilchain/veilchain/socks"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run a hop/exit server: SOCKS5 and HTTP CONNECT inside TLS (socks5s:// and https:// hops), plain SOCKS4/4a/5 and HTTP on loopback",
		Description: "It speaks TLS 1.3 with a key of its own, made on first start in --state-dir and kept,\n" +
			"and prints the hop URL for clients, with the key's pin: socks5s://HOST:PORT?pin=sha256:...\n" +
			"Clients authenticate inside TLS; anyone else (a prober, a browser) meets an ordinary web\n" +
			"server: a plain page, or the site given by --decoy. Plain SOCKS and HTTP clients are\n" +
			"served on the same port when it is on loopback, or with --allow-plain.\n" +
			"As an exit it resolves names itself and refuses loopback, private, link-local, CGNAT,\n" +
			"unspecified and multicast destinations, checked on the address it dials.\n" +
			"Command lines are visible to other users (ps): prefer a config over --user on shared machines.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Usage: "address to listen on", Value: "127.0.0.1:1080"},
			&cli.StringSliceFlag{Name: "user", Usage: "require auth (SOCKS5 user/password, HTTP Basic); `NAME:PASS` (repeatable; visible to other users in ps: prefer --users-file)"},
			&cli.StringFlag{Name: "users-file", Usage: "require auth by the users in `FILE`: NAME:HASH lines, the hash from `veilchain hash-password`; re-read on SIGHUP"},
			&cli.BoolFlag{Name: "allow-private", Usage: "let clients reach private, loopback and link-local destinations"},
			&cli.StringSliceFlag{Name: "allow", Usage: "let clients reach this otherwise refused `CIDR` (repeatable), e.g. a LAN the exit serves"},
			&cli.BoolFlag{Name: "allow-open", Usage: "listen on a non-loopback address without --user (an open proxy)"},
			&cli.StringFlag{Name: "resolver", Usage: "resolve destination names with the DNS server at `HOST:PORT` instead of the system's"},
			&cli.StringFlag{Name: "outbound-ip", Usage: "source `IP` of outgoing connections"},
			&cli.StringFlag{Name: "state-dir", Usage: "where the hop's key and certificate are kept (default: " + defaultStateDirText() + ")"},
			&cli.BoolFlag{Name: "print-url", Usage: "print the hop URL for clients (making the key if there is none yet) and exit"},
			&cli.BoolFlag{Name: "allow-plain", Usage: "also serve plain SOCKS and HTTP clients on a non-loopback listener: their credentials and destinations cross the network unencrypted"},
			&cli.StringFlag{Name: "decoy", Usage: "what clients that do not authenticate see: a reverse proxy to this http(s) `URL` (default: a plain page)"},
			&cli.StringFlag{Name: "tls-cert", Usage: "PEM certificate `FILE` to serve instead of the self-signed one (for clients that verify by CA)"},
			&cli.StringFlag{Name: "tls-key", Usage: "PEM private key `FILE` for --tls-cert"},
			&cli.DurationFlag{Name: "handshake-timeout", Usage: "bound on a client's SOCKS handshake", Value: socks.DefaultHandshakeTimeout},
			&cli.DurationFlag{Name: "connect-timeout", Usage: "bound on each outgoing connect", Value: 10 * time.Second},
			&cli.DurationFlag{Name: "tunnel-idle", Usage: "close relayed connections that carry nothing for this long (0: never)"},
			&cli.DurationFlag{Name: "shutdown-grace", Usage: "on SIGINT/SIGTERM, time live connections get to finish", Value: 10 * time.Second},
		}, logFlags...),
		Action: serveAction,
	}
}

func serveAction(c *cli.Context) error {
	log, err := newLogger(os.Stderr, c.String("log-level"), c.String("log-format"))
	if err != nil {
		return err
	}
	var creds socks.Credentials
	for _, u := range c.StringSlice("user") {
		name, pass, ok := strings.Cut(u, ":")
		if !ok || name == "" || len(name) > 255 || len(pass) > 255 {
			return fmt.Errorf("--user %q: want NAME:PASS, each at most 255 bytes", name)
		}
		if creds == nil {
			creds = socks.Credentials{}
		}
		creds[name] = pass
	}
	var auth socks.Authenticator // stays nil without users: a nil map would still be non-nil here
	var reload func() error
	switch file := c.String("users-file"); {
	case file != "" && creds != nil:
		return fmt.Errorf("give --user or --users-file, not both")
	case file != "":
		users := &policy.Users{Logger: log}
		reload = func() error { return loadUsersFile(users, file) }
		if err := reload(); err != nil {
			return err
		}
		auth = users
	case creds != nil:
		auth = creds
	}
	defer serveOnSIGHUP(log, reload)()
	addr := c.String("listen")
	if !isLoopback(addr) && auth == nil && !c.Bool("allow-open") {
		return fmt.Errorf("--listen %s is not a loopback address: give --user NAME:PASS, or --allow-open to run an open proxy", addr)
	}
	exit := &chain.Exit{AllowPrivate: c.Bool("allow-private"), Timeout: c.Duration("connect-timeout")}
	for _, a := range c.StringSlice("allow") {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return fmt.Errorf("--allow %q: want a CIDR such as 192.168.1.0/24", a)
		}
		exit.Allow = append(exit.Allow, p.Masked())
	}
	if r := c.String("resolver"); r != "" {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return fmt.Errorf("--resolver %q: want HOST:PORT", r)
		}
		exit.Resolver = dnsResolver(r)
	}
	if ip := c.String("outbound-ip"); ip != "" {
		if exit.LocalIP, err = netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("--outbound-ip: %w", err)
		}
	}
	timeout := c.Duration("handshake-timeout")
	id, err := serveIdentity(c.String("state-dir"), c.String("tls-cert"), c.String("tls-key"))
	if err != nil {
		return err
	}
	if c.Bool("print-url") {
		fmt.Fprintln(c.App.Writer, hopURL(addr, id.Pin, auth != nil))
		return nil
	}
	var decoySite *url.URL
	if d := c.String("decoy"); d != "" {
		if decoySite, err = layer.ParseDecoy(d); err != nil {
			return err
		}
	}
	plain := isLoopback(addr) || c.Bool("allow-plain")
	gate := &layer.Gate{TLS: &tls.Config{Certificates: []tls.Certificate{id.Cert}}, Timeout: timeout, Logger: log}
	if auth != nil {
		gate.Auth = auth.Authenticate
	}
	newSOCKS := func() frontEnd {
		return &socks.Server{Dialer: exit, Auth: auth, HandshakeTimeout: timeout, IdleTimeout: c.Duration("tunnel-idle"), Logger: log}
	}
	newHTTP := func() frontEnd {
		return &httpproxy.Server{Dialer: exit, Auth: auth, HandshakeTimeout: timeout, TunnelIdleTimeout: c.Duration("tunnel-idle"), Logger: log}
	}
	ln, err := conns.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var servers []server
	tlsLn := ln
	if plain {
		lns := conns.Split(ln, 3, timeout, byFirstByte, log)
		tlsLn = lns[0]
		servers = append(servers, server{newSOCKS(), lns[1]}, server{newHTTP(), lns[2]})
	}
	socksLn, httpLn, decoyLn := gate.Split(tlsLn)
	servers = append(servers, server{newSOCKS(), socksLn}, server{newHTTP(), httpLn}, server{layer.Decoy(decoySite), decoyLn})
	u := hopURL(ln.Addr().String(), id.Pin, auth != nil)
	if plain && !isLoopback(addr) {
		log.Warn("plain SOCKS and HTTP are served on a non-loopback address (--allow-plain): their clients' credentials and destinations cross the network unencrypted")
	}
	switch {
	case id.Created:
		log.Info("made a new key for this hop: give clients the hop URL", "state_dir", c.String("state-dir"))
	case id.Renewed:
		log.Info("renewed the hop's certificate; the key and its pin are unchanged")
	}
	log.Info("serving hop", "addr", ln.Addr().String(), "url", u, "plain", plain, "auth", auth != nil, "allow_private", exit.AllowPrivate)
	fmt.Fprintln(c.App.Writer, u)
	return serveUntilDone(c.Context, log, c.Duration("shutdown-grace"), servers)
}

// byFirstByte routes a plain-allowed serve port's clients: TLS (a
// handshake record starts 0x16) to the gate, SOCKS 4 and 5 and HTTP to
// their plain servers, untouched, so the relay can still splice.
func byFirstByte(c net.Conn) (net.Conn, int) {
	switch b, c, err := conns.FirstByte(c); {
	case err != nil:
		c.Close()
		return nil, -1
	case b == 0x16:
		return c, 0
	case b == 4 || b == 5:
		return c, 1
	default:
		return c, 2 // the c FirstByte returned: where it had to read the byte, it is in front
	}
}

// serveIdentity is the hop's certificate: --tls-cert's, or the one kept
// in the state dir (made on first start).
func serveIdentity(stateDir, certFile, keyFile string) (*layer.Identity, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		return &layer.Identity{Cert: cert, Pin: chain.PinOf(cert.Leaf)}, nil
	}
	if stateDir == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return nil, fmt.Errorf("no place for the hop's key (%w): give --state-dir", err)
		}
		stateDir = filepath.Join(dir, "veilchain", "serve")
	}
	id, err := layer.LoadOrCreate(stateDir, time.Now())
	if err != nil {
		return nil, fmt.Errorf("--state-dir: %w", err)
	}
	return id, nil
}

func defaultStateDirText() string {
	if dir, err := os.UserConfigDir(); err == nil {
		return filepath.Join(dir, "veilchain", "serve")
	}
	return "the user's config dir/veilchain/serve"
}

// hopURL is the URL a client gives for this hop. An unspecified listen
// address (0.0.0.0, ::) cannot say how clients reach it: HOST stands in.
// Passwords are never printed.
func hopURL(listen, pin string, withUser bool) string {
	host, port, _ := net.SplitHostPort(listen)
	if ip, err := netip.ParseAddr(host); host == "" || err == nil && ip.IsUnspecified() {
		host = "HOST"
	}
	user := ""
	if withUser {
		user = "USER:PASSWORD@"
	}
	return "socks5s://" + user + net.JoinHostPort(host, port) + "?pin=" + pin
}

// dnsResolver resolves with the DNS server at addr only.
func dnsResolver(addr string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

// isLoopback reports whether a listen address is on loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// loadUsersFile reads serve's users: NAME:HASH lines (bcrypt, from
// `veilchain hash-password`), blank lines and # comments skipped. On
// error users keep what they had.
func loadUsersFile(users *policy.Users, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("--users-file: %w", err)
	}
	hashes := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok || name == "" || len(name) > 255 {
			return fmt.Errorf("--users-file %s:%d: want NAME:HASH", file, i+1)
		}
		hashes[name] = hash
	}
	if err := users.SetHashes(hashes); err != nil {
		return fmt.Errorf("--users-file %s: %w", file, err)
	}
	return nil
}
