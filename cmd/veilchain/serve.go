package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/httpproxy"
	"github.com/veilchain/veilchain/internal/conns"
	"github.com/veilchain/veilchain/socks"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run a hop/exit server: SOCKS4/4a/5 and HTTP CONNECT on one port, or HTTPS CONNECT with --tls-cert",
		Description: "As an exit it resolves names itself and refuses loopback, private, link-local, CGNAT,\n" +
			"unspecified and multicast destinations, checked on the address it dials.\n" +
			"With --tls-cert and --tls-key it is an HTTPS proxy (CONNECT over TLS), for https:// hop URLs.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Usage: "address to listen on", Value: "127.0.0.1:1080"},
			&cli.StringSliceFlag{Name: "user", Usage: "require RFC 1929 auth; `NAME:PASS` (repeatable)"},
			&cli.BoolFlag{Name: "allow-private", Usage: "let clients reach private, loopback and link-local destinations"},
			&cli.StringSliceFlag{Name: "allow", Usage: "let clients reach this otherwise refused `CIDR` (repeatable), e.g. a LAN the exit serves"},
			&cli.BoolFlag{Name: "allow-open", Usage: "listen on a non-loopback address without --user (an open proxy)"},
			&cli.StringFlag{Name: "resolver", Usage: "resolve destination names with the DNS server at `HOST:PORT` instead of the system's"},
			&cli.StringFlag{Name: "outbound-ip", Usage: "source `IP` of outgoing connections"},
			&cli.StringFlag{Name: "tls-cert", Usage: "PEM certificate `FILE`: serve HTTPS CONNECT (an https:// hop) instead of SOCKS and HTTP"},
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
	addr := c.String("listen")
	if !isLoopback(addr) && creds == nil && !c.Bool("allow-open") {
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
	var auth socks.Authenticator // stays nil without --user: a nil map would still be non-nil here
	if creds != nil {
		auth = creds
	}
	httpSrv := &httpproxy.Server{Dialer: exit, Auth: auth, HandshakeTimeout: timeout, TunnelIdleTimeout: c.Duration("tunnel-idle"), Logger: log}
	certFile, keyFile := c.String("tls-cert"), c.String("tls-key")
	if (certFile == "") != (keyFile == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	var tlsConfig *tls.Config
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var servers []server
	kind := "SOCKS4/4a/5 and HTTP CONNECT"
	if tlsConfig != nil {
		kind = "HTTPS CONNECT"
		servers = []server{{httpSrv, tls.NewListener(ln, tlsConfig)}}
	} else {
		socksLn, httpLn := conns.Sniff(ln, timeout)
		servers = []server{
			{&socks.Server{Dialer: exit, Auth: auth, HandshakeTimeout: timeout, IdleTimeout: c.Duration("tunnel-idle"), Logger: log}, socksLn},
			{httpSrv, httpLn},
		}
	}
	log.Info("serving hop", "addr", ln.Addr().String(), "protocols", kind, "auth", creds != nil, "allow_private", exit.AllowPrivate)
	return serveUntilDone(c.Context, log, c.Duration("shutdown-grace"), servers)
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
