package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/net/proxy"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/httpproxy"
	"github.com/veilchain/veilchain/internal/conns"
	"github.com/veilchain/veilchain/internal/layer"
	"github.com/veilchain/veilchain/resolver"
	"github.com/veilchain/veilchain/socks"
)

// demoName is the destination's name. Only the demo exit's own DNS server
// knows it, so a request that works proves the name was resolved at the exit.
const demoName = "dest.demo.test"

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run a whole chain on this machine and show what the destination sees",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "socks", Usage: "SOCKS5 front end `ADDR` (a free port is used if it is taken)", Value: "127.0.0.1:1080"},
			&cli.StringFlag{Name: "http", Usage: "HTTP proxy front end `ADDR` (a free port is used if it is taken)", Value: "127.0.0.1:8118"},
			&cli.BoolFlag{Name: "once", Usage: "exit after the demo requests instead of serving until Ctrl-C"},
			&cli.BoolFlag{Name: "plain", Usage: "plain SOCKS5 links to the hops instead of TLS to each (socks5:// instead of socks5s://)"},
			&cli.BoolFlag{Name: "pipeline", Usage: "with --plain: pipeline the handshakes to the demo's hops (as ?pipeline=1 on a hop)"},
			&cli.BoolFlag{Name: "early-reply", Usage: "with --pipeline: answer SOCKS and CONNECT clients as soon as the handshakes are sent"},
		}, logFlags...),
		Action: func(c *cli.Context) error {
			log, err := newLogger(os.Stderr, c.String("log-level"), c.String("log-format"))
			if err != nil {
				return err
			}
			for _, f := range []string{"socks", "http"} {
				if !isLoopback(c.String(f)) {
					return fmt.Errorf("--%s %s: the demo's hops reach loopback and private addresses, so its front ends listen on loopback only", f, c.String(f))
				}
			}
			if c.Bool("pipeline") && !c.Bool("plain") {
				return fmt.Errorf("--pipeline needs --plain: inside TLS to a hop the handshake is always in one write")
			}
			stopProfiles, err := demoProfiles()
			if err != nil {
				return err
			}
			defer stopProfiles()
			d := &demo{out: os.Stdout, log: log, plain: c.Bool("plain"), pipeline: c.Bool("pipeline"), early: c.Bool("early-reply")}
			defer d.close()
			if err := d.start(c.String("socks"), c.String("http")); err != nil {
				return err
			}
			if err := d.requests(c.Context); err != nil {
				return err
			}
			if c.Bool("once") {
				return nil
			}
			fmt.Fprintf(d.out, "\nServing until Ctrl-C. Try:\n  curl --socks5-hostname %s http://%s/\n  curl -x http://%s -H 'X-Forwarded-For: 203.0.113.7' http://%s/\n",
				d.socks, d.destAddr, d.http, d.destAddr)
			fmt.Fprintf(d.out, "(curl --socks5, which resolves the name on this machine, fails: only the exit can resolve %s)\n", demoName)
			<-c.Context.Done()
			return nil
		},
	}
}

// demo is a destination, the exit's DNS server, two hops and two front
// ends, all on loopback. The exit sends from 127.0.0.2 when it can, so the
// destination's view of its peer differs from the client's own 127.0.0.1.
type demo struct {
	out         io.Writer
	log         *slog.Logger
	plain       bool   // plain SOCKS5 to the hops, not a TLS layer to each
	pipeline    bool   // pipelined handshakes to the hops
	early       bool   // front ends answer before the chain is confirmed
	socks, http string // front end addresses
	destAddr    string // demoName:port
	exitIP      string
	dns         resolver.Zone
	closers     []func()

	mu   sync.Mutex
	seen *http.Request // last request the destination got
}

func (d *demo) start(socksAddr, httpAddr string) error {
	d.exitIP = "127.0.0.2"
	if ln, err := net.Listen("tcp", d.exitIP+":0"); err != nil {
		d.exitIP = "127.0.0.1" // no 127.0.0.2 on this system's loopback
	} else {
		ln.Close()
	}

	dest, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: http.HandlerFunc(d.serveDest), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(dest)
	d.closers = append(d.closers, func() { hs.Close() })
	d.destAddr = net.JoinHostPort(demoName, port(dest.Addr()))

	d.dns.Records = map[string]netip.Addr{demoName: netip.MustParseAddr("127.0.0.1")}
	dnsAddr, err := d.dns.Listen("127.0.0.1:0")
	if err != nil {
		return err
	}
	d.closers = append(d.closers, func() { d.dns.Close() })

	// The hops allow loopback destinations only because everything in the
	// demo is on loopback; `veilchain serve` refuses them by default.
	creds := socks.Credentials{"demo": "demo-password"}
	exit, exitPin, err := d.hop(&socks.Server{
		Dialer: &chain.Exit{AllowPrivate: true, LocalIP: netip.MustParseAddr(d.exitIP), Resolver: dnsResolver(dnsAddr)},
		Auth:   creds,
		Logger: d.log,
	}, creds)
	if err != nil {
		return err
	}
	hop1, hop1Pin, err := d.hop(&socks.Server{Dialer: &chain.Exit{AllowPrivate: true}, Logger: d.log}, nil)
	if err != nil {
		return err
	}
	urls := []string{"socks5://" + hop1, "socks5://demo:demo-password@" + exit}
	if d.pipeline {
		urls[0], urls[1] = urls[0]+"?pipeline=1", urls[1]+"?pipeline=1"
	}
	if !d.plain {
		urls = []string{"socks5s://" + hop1 + "?pin=" + hop1Pin, "socks5s://demo:demo-password@" + exit + "?pin=" + exitPin}
	}
	c := &chain.Chain{}
	for _, u := range urls {
		h, err := chain.ParseHop(u)
		if err != nil {
			return err
		}
		c.Hops = append(c.Hops, h)
	}
	if d.socks, err = d.listenAnyPort(socksAddr, &socks.Server{Dialer: c, Logger: d.log, EarlyReply: d.early}); err != nil {
		return err
	}
	if d.http, err = d.listenAnyPort(httpAddr, &httpproxy.Server{Dialer: c, Logger: d.log, EarlyReply: d.early}); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "Chain:  client -> front end (SOCKS5 %s, HTTP %s) -> hop 1 %s -> exit %s (sends from %s) -> %s\n",
		d.socks, d.http, hop1, exit, d.exitIP, d.destAddr)
	if d.plain {
		fmt.Fprintf(d.out, "Links:  plain SOCKS5: hop 1 reads the exit's password and every destination name\n")
	} else {
		fmt.Fprintf(d.out, "Links:  TLS 1.3 to each hop, pinned (socks5s://): hop 1 sees only TLS to the exit\n")
	}
	return nil
}

// hop starts srv as a hop on loopback: plain, or behind a gate with a key
// of its own, as `veilchain serve` runs it. It returns the address and
// the key's pin.
func (d *demo) hop(srv *socks.Server, creds socks.Credentials) (addr, pin string, err error) {
	if d.plain {
		addr, err := d.listen("127.0.0.1:0", srv)
		return addr, "", err
	}
	dir, err := os.MkdirTemp("", "veilchain-demo-")
	if err != nil {
		return "", "", err
	}
	d.closers = append(d.closers, func() { os.RemoveAll(dir) })
	id, err := layer.LoadOrCreate(dir, time.Now())
	if err != nil {
		return "", "", err
	}
	ln, err := conns.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", err
	}
	g := &layer.Gate{TLS: &tls.Config{Certificates: []tls.Certificate{id.Cert}}}
	if creds != nil {
		g.Auth = creds.Authenticate
	}
	socksLn, httpLn, decoyLn := g.Split(ln)
	httpLn.Close()
	decoy := layer.Decoy(nil)
	for _, s := range []server{{srv, socksLn}, {decoy, decoyLn}} {
		go s.srv.Serve(s.ln)
		d.closers = append(d.closers, func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			s.srv.Shutdown(ctx)
		})
	}
	return ln.Addr().String(), id.Pin, nil
}

// listen starts srv on addr and returns the bound address.
func (d *demo) listen(addr string, srv frontEnd) (string, error) {
	ln, err := conns.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	go srv.Serve(ln)
	d.closers = append(d.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln.Addr().String(), nil
}

// listenAnyPort is listen, falling back to a free port when addr is taken.
func (d *demo) listenAnyPort(addr string, srv frontEnd) (string, error) {
	bound, err := d.listen(addr, srv)
	if err == nil {
		return bound, nil
	}
	host, _, _ := net.SplitHostPort(addr)
	if bound, err = d.listen(net.JoinHostPort(host, "0"), srv); err == nil {
		fmt.Fprintf(d.out, "(%s is taken; using %s)\n", addr, bound)
	}
	return bound, err
}

func (d *demo) close() {
	for _, c := range slices.Backward(d.closers) {
		c()
	}
}

func (d *demo) serveDest(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.seen = r
	d.mu.Unlock()
	fmt.Fprintf(w, "Hello from the destination. I see you as %s.\n", r.RemoteAddr)
}

// requests fetches the destination by name through each front end, with
// headers a leaky client or proxy might add, and prints what it saw.
func (d *demo) requests(ctx context.Context) error {
	sd, err := proxy.SOCKS5("tcp", d.socks, nil, proxy.Direct)
	if err != nil {
		return err
	}
	viaSOCKS := &http.Transport{DialContext: sd.(proxy.ContextDialer).DialContext}
	viaHTTP := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: d.http})}
	for _, r := range []struct {
		what, note string
		tr         *http.Transport
	}{
		{"socks5h://" + d.socks, "SOCKS carries bytes end to end: what the client sends arrives unchanged", viaSOCKS},
		{"http://" + d.http, "the HTTP front end removed the identifying headers and added none", viaHTTP},
	} {
		if err := d.request(ctx, r.tr, r.what, r.note); err != nil {
			return err
		}
	}
	fmt.Fprintf(d.out, "\nDNS: only the exit's resolver knows %s, and it was asked %d time(s): the name was resolved at the exit.\n",
		demoName, d.dns.Queries(demoName))
	return nil
}

func (d *demo) request(ctx context.Context, tr *http.Transport, what, note string) error {
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+d.destAddr+"/", nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("Via", "1.1 leaky-proxy")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("request through %s: %w", what, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	d.mu.Lock()
	seen := d.seen
	d.mu.Unlock()
	if seen == nil {
		return errors.New("the destination saw no request")
	}
	fmt.Fprintf(d.out, "\nClient: GET http://%s/ with X-Forwarded-For and Via, through %s -> %s", d.destAddr, what, body)
	fmt.Fprintf(d.out, "What the destination saw:\n  peer address: %s", seen.RemoteAddr)
	if host, _, _ := net.SplitHostPort(seen.RemoteAddr); host == d.exitIP && d.exitIP != "127.0.0.1" {
		fmt.Fprint(d.out, "  (the exit; the client is 127.0.0.1)")
	}
	fmt.Fprintf(d.out, "\n  request:      %s %s\n  headers:\n", seen.Method, seen.RequestURI)
	for _, k := range slices.Sorted(maps.Keys(seen.Header)) {
		fmt.Fprintf(d.out, "    %s: %s\n", k, strings.Join(seen.Header[k], ", "))
	}
	fmt.Fprintf(d.out, "  (%s)\n", note)
	return nil
}

func port(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}
