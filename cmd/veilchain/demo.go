package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/net/proxy"

	"github.com/veilchain/veilchain/chain"
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
			&cli.StringFlag{Name: "socks", Usage: "front end `ADDR` (a free port is used if it is taken)", Value: "127.0.0.1:1080"},
			&cli.BoolFlag{Name: "once", Usage: "exit after the first request instead of serving until Ctrl-C"},
		}, logFlags...),
		Action: func(c *cli.Context) error {
			log, err := newLogger(os.Stderr, c.String("log-level"), c.String("log-format"))
			if err != nil {
				return err
			}
			if !isLoopback(c.String("socks")) {
				return fmt.Errorf("--socks %s: the demo's hops reach loopback and private addresses, so its front end listens on loopback only", c.String("socks"))
			}
			d := &demo{out: os.Stdout, log: log}
			defer d.close()
			if err := d.start(c.String("socks")); err != nil {
				return err
			}
			if err := d.request(c.Context); err != nil {
				return err
			}
			if c.Bool("once") {
				return nil
			}
			fmt.Fprintf(d.out, "\nServing until Ctrl-C. Try:\n  curl --socks5-hostname %s http://%s/\n", d.front, d.destAddr)
			fmt.Fprintf(d.out, "(curl --socks5, which resolves the name on this machine, fails: this machine cannot resolve %s)\n", demoName)
			<-c.Context.Done()
			return nil
		},
	}
}

// demo is a destination, the exit's DNS server, two hops and a front end,
// all on loopback. The exit sends from 127.0.0.2 when it can, so the
// destination's view of its peer differs from the client's own 127.0.0.1.
type demo struct {
	out      io.Writer
	log      *slog.Logger
	front    string // front end address
	destAddr string // demoName:port
	exitIP   string
	dns      resolver.Zone
	closers  []func()

	mu   sync.Mutex
	seen *http.Request // last request the destination got
	peer string
}

func (d *demo) start(frontAddr string) error {
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
	exit, err := d.listen("127.0.0.1:0", &socks.Server{
		Dialer:      &chain.Exit{AllowPrivate: true, LocalIP: netip.MustParseAddr(d.exitIP), Resolver: dnsResolver(dnsAddr)},
		Credentials: socks.Credentials{"demo": "demo-password"},
	})
	if err != nil {
		return err
	}
	hop1, err := d.listen("127.0.0.1:0", &socks.Server{Dialer: &chain.Exit{AllowPrivate: true}})
	if err != nil {
		return err
	}
	c := &chain.Chain{Hops: []chain.Hop{
		&chain.SOCKS5{Address: hop1},
		&chain.SOCKS5{Address: exit, User: "demo", Password: "demo-password"},
	}}
	d.front, err = d.listen(frontAddr, &socks.Server{Dialer: c})
	if err != nil {
		if d.front, err = d.listen("127.0.0.1:0", &socks.Server{Dialer: c}); err != nil {
			return err
		}
		fmt.Fprintf(d.out, "(%s is taken; the front end uses %s)\n", frontAddr, d.front)
	}
	fmt.Fprintf(d.out, "Chain:  client -> front end %s -> hop 1 %s -> exit %s (sends from %s) -> %s\n",
		d.front, hop1, exit, d.exitIP, d.destAddr)
	return nil
}

// listen starts srv on addr and returns the bound address.
func (d *demo) listen(addr string, srv *socks.Server) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv.Logger = d.log
	go srv.Serve(ln)
	d.closers = append(d.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln.Addr().String(), nil
}

func (d *demo) close() {
	for _, c := range slices.Backward(d.closers) {
		c()
	}
}

func (d *demo) serveDest(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.seen, d.peer = r, r.RemoteAddr
	d.mu.Unlock()
	fmt.Fprintf(w, "Hello from the destination. I see you as %s.\n", r.RemoteAddr)
}

// request fetches the destination by name through the front end with an
// independent SOCKS5 client (golang.org/x/net/proxy), headers included
// that a client might leak, and prints what the destination saw.
func (d *demo) request(ctx context.Context) error {
	sd, err := proxy.SOCKS5("tcp", d.front, nil, proxy.Direct)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy:       nil,
		DialContext: sd.(proxy.ContextDialer).DialContext,
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+d.destAddr+"/", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("request through the chain: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	d.mu.Lock()
	seen, peer := d.seen, d.peer
	d.mu.Unlock()
	if seen == nil {
		return errors.New("the destination saw no request")
	}
	fmt.Fprintf(d.out, "Client: GET http://%s/ through socks5h://%s -> %s", d.destAddr, d.front, body)
	fmt.Fprintf(d.out, "\nWhat the destination saw:\n  peer address: %s", peer)
	if host, _, _ := net.SplitHostPort(peer); host == d.exitIP && d.exitIP != "127.0.0.1" {
		fmt.Fprint(d.out, "  (the exit; the client is 127.0.0.1)")
	}
	fmt.Fprintf(d.out, "\n  request:      %s %s\n  headers:\n", seen.Method, seen.RequestURI)
	for _, k := range slices.Sorted(maps.Keys(seen.Header)) {
		fmt.Fprintf(d.out, "    %s: %s\n", k, strings.Join(seen.Header[k], ", "))
	}
	fmt.Fprintf(d.out, "DNS: only the exit's resolver knows %s; it was asked %d time(s).\n",
		demoName, d.dns.Queries(demoName))
	return nil
}

func port(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}
