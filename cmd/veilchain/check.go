package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"
	"github.com/urfave/cli/v2"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/resolver"
	"github.com/veilchain/veilchain/socks"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "prove the chains: every hop's reachability, latency and auth, the exit's address, far-side DNS",
		Description: "Exit status 1 if anything failed. The exit's address needs --echo-url, a URL whose body is the\n" +
			"caller's address (for example one you host); far-side DNS asks dns.upstream through each chain.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "YAML config `FILE`"},
			&cli.StringSliceFlag{Name: "hop", Usage: "hop `URL`s of a chain to check instead (repeatable)"},
			&cli.StringFlag{Name: "echo-url", Usage: "http(s) `URL` that answers with the caller's address"},
			&cli.StringFlag{Name: "dns-domain", Usage: "far-side DNS test: a fresh random name under `DOMAIN` is asked for", Value: "veilchain-check.invalid"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"},
		},
		Action: checkAction,
	}
}

type chainReport struct {
	Name string            `json:"name"`
	Mode string            `json:"mode"`
	Hops []chain.HopReport `json:"hops"`
	Exit string            `json:"exit_address,omitempty"`
	DNS  string            `json:"far_side_dns,omitempty"`
	Leak string            `json:"dns_leak_test,omitempty"`
	Err  []string          `json:"errors,omitempty"`
	OK   bool              `json:"ok"`
}

func checkAction(c *cli.Context) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	// The DNS-leak self-test: this process's resolver is pointed at a
	// stand-in that counts what it is asked (hop names may legitimately
	// be resolved here; destination names never).
	standIn := &resolver.Zone{}
	standInAddr, err := standIn.Listen("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer standIn.Close()
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, standInAddr)
	}}
	b, err := build(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer b.close()
	var reports []chainReport
	allOK := true
	for _, name := range slices.Sorted(maps.Keys(b.chains)) {
		ch, ok := b.chains[name].(*chain.Chain)
		if !ok {
			// A direct chain has no hop to check; say so rather than pass quietly.
			reports = append(reports, chainReport{Name: name, Mode: "direct", OK: true,
				Err: []string{"direct: connects WITHOUT any proxy; nothing to check"}})
			continue
		}
		r := checkChain(c.Context, name, ch, cfg.Chains[name].Mode, c.String("echo-url"), cfg.DNS.Upstream, c.String("dns-domain"))
		leakTest(c.Context, &r, ch, standIn, c.String("dns-domain"))
		allOK = allOK && r.OK
		reports = append(reports, r)
	}
	if c.Bool("json") {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{"ok": allOK, "chains": reports})
	} else {
		printReports(os.Stdout, reports)
	}
	if !allOK {
		return cli.Exit("", 1)
	}
	return nil
}

func checkChain(ctx context.Context, name string, ch *chain.Chain, mode, echoURL, upstream, domain string) chainReport {
	if mode == "" {
		mode = "strict"
	}
	r := chainReport{Name: name, Mode: mode, OK: true}
	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	r.Hops = ch.Probe(pctx)
	for _, h := range r.Hops {
		if !h.Reachable || h.Auth == "refused" {
			r.OK = false
		}
	}
	if echoURL != "" {
		tr := &http.Transport{DialContext: ch.DialContext, Proxy: nil}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		resp, err := client.Get(echoURL)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
			resp.Body.Close()
			r.Exit = strings.TrimSpace(string(body))
		} else {
			r.OK = false
			r.Err = append(r.Err, "exit address: "+err.Error())
		}
	}
	if upstream != "" {
		name := fmt.Sprintf("vc%08x.%s", rand.Uint32(), domain)
		s := &resolver.Server{Dialer: ch, Upstream: upstream, Timeout: 15 * time.Second}
		m, err := s.Query(name, dns.TypeA)
		s.Shutdown(context.Background())
		if err != nil {
			r.OK = false
			r.Err = append(r.Err, "far-side DNS: "+err.Error())
		} else {
			r.DNS = fmt.Sprintf("%s answered %s for %s", upstream, dns.RcodeToString[m.Rcode], name)
		}
	}
	return r
}

// leakTest asks for a fresh random name through a SOCKS5 front end on
// this chain, as a program would, and counts how often the stand-in for
// the local resolver was asked for it: it must be never.
func leakTest(ctx context.Context, r *chainReport, ch chain.Dialer, standIn *resolver.Zone, domain string) {
	name := fmt.Sprintf("leak%08x.%s", rand.Uint32(), domain)
	front := &socks.Server{Dialer: ch}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.OK = false
		r.Err = append(r.Err, "DNS leak test: "+err.Error())
		return
	}
	go front.Serve(ln)
	defer front.Shutdown(context.Background())
	client := &chain.Chain{Hops: []chain.Hop{&chain.SOCKS5{Address: ln.Addr().String()}}, HandshakeTimeout: 30 * time.Second}
	if conn, err := client.DialContext(ctx, "tcp", net.JoinHostPort(name, "80")); err == nil {
		conn.Close() // the exit may even reach it: the point is where it was resolved
	}
	if n := standIn.Queries(name); n != 0 {
		r.OK = false
		r.Err = append(r.Err, fmt.Sprintf("DNS LEAK: this machine's resolver was asked %d time(s) for %s", n, name))
		return
	}
	r.Leak = fmt.Sprintf("this machine's resolver was asked 0 times for %s", name)
}

func printReports(w io.Writer, reports []chainReport) {
	for _, r := range reports {
		status := "ok"
		if !r.OK {
			status = "FAILED"
		}
		fmt.Fprintf(w, "chain %s (%s): %s\n", r.Name, r.Mode, status)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  #\thop\tencrypted\treachable\tauth\tlatency\terror")
		for _, h := range r.Hops {
			reach, lat := "yes", h.Latency.Round(100*time.Microsecond).String()
			if !h.Reachable {
				reach, lat = "NO", "-"
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Position, h.Addr, h.Encrypted, reach, h.Auth, lat, h.Err)
		}
		tw.Flush()
		for _, h := range r.Hops {
			if h.HostKey != "" {
				fmt.Fprintf(w, "  hop %d SSH: host key %s", h.Position, h.HostKey)
				if h.AuthMethod != "" {
					fmt.Fprintf(w, " verified, auth %s accepted, channel open %s", h.AuthMethod, h.ChannelOpen.Round(10*time.Microsecond))
				}
				fmt.Fprintln(w)
			}
		}
		if r.Exit != "" {
			fmt.Fprintf(w, "  exit address: %s\n", r.Exit)
		}
		if r.DNS != "" {
			fmt.Fprintf(w, "  far-side DNS: %s\n", r.DNS)
		}
		if r.Leak != "" {
			fmt.Fprintf(w, "  DNS leak test: %s\n", r.Leak)
		}
		for _, e := range r.Err {
			fmt.Fprintf(w, "  error: %s\n", e)
		}
	}
}
