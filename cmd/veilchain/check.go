package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/configs"
	"github.com/veilchain/veilchain/resolver"
	"github.com/veilchain/veilchain/socks"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "prove the chains: every hop's reachability, latency and auth, the exit's address, far-side DNS",
		Description: "Exit status 1 if anything failed. The exit's address needs --echo-url, a URL that answers with the\n" +
			"caller's address: a bare IP, or JSON with ip, origin, peer_ip or address (for example one you host).\nFar-side DNS asks dns.upstream (or --dns-upstream)\n" +
			"through each chain. Unless a listener has a DNS front end or --dns-upstream is given, an upstream\n" +
			"that does not answer is a warning, not a failure: the chain itself may be fine.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "YAML config `FILE`", DefaultText: "the user's config file, if any: see veilchain init"},
			&cli.StringSliceFlag{Name: "hop", Usage: "hop `URL`s of a chain to check instead (repeatable)"},
			&cli.StringFlag{Name: "echo-url", Usage: "http(s) `URL` that answers with the caller's address"},
			&cli.StringFlag{Name: "dns-domain", Usage: "far-side DNS test: a fresh random name under `DOMAIN` is asked for", Value: "veilchain-check.invalid"},
			&cli.StringFlag{Name: "dns-upstream", Usage: "far-side DNS test: ask the DNS server at `HOST:PORT` (default: the config's dns.upstream)"},
			&cli.BoolFlag{Name: "no-dns", Usage: "skip the far-side DNS test"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"},
			&cli.DurationFlag{Name: "timeout", Usage: "bound on each hop's connect and handshake, and on each test's step", Value: 10 * time.Second},
		},
		Action: checkAction,
	}
}

type chainReport struct {
	Name string            `json:"name"`
	Mode string            `json:"mode"`
	Hops []chain.HopReport `json:"hops"`
	Exit string            `json:"exit_address,omitempty"`
	DNS  *dnsReport        `json:"far_side_dns,omitempty"`
	Leak *leakReport       `json:"dns_leak_test,omitempty"`
	Err  []string          `json:"errors,omitempty"`
	Warn []string          `json:"warnings,omitempty"`
	OK   bool              `json:"ok"`
}

// dnsReport is the far-side DNS test: a fresh name asked of upstream
// through the chain. Rcode is the answer's (NXDOMAIN is a pass: the name
// does not exist, and the answer came through the chain).
type dnsReport struct {
	Upstream string `json:"upstream"`
	From     string `json:"from"` // dns.upstream or --dns-upstream
	Name     string `json:"name"`
	Rcode    string `json:"rcode,omitempty"`
	Error    string `json:"error,omitempty"`
}

func (d *dnsReport) String() string {
	if d.Error != "" {
		return fmt.Sprintf("%s (%s) did not answer through the chain: %s", d.Upstream, d.From, d.Error)
	}
	return fmt.Sprintf("%s answered %s for %s", d.Upstream, d.Rcode, d.Name)
}

// leakReport is the DNS-leak self-test: LocalQueries must be 0. Run is
// false, with the reason, when the chain did not take the name to its
// exit, so a count would prove nothing.
type leakReport struct {
	Run          bool   `json:"run"`
	Name         string `json:"name"`
	LocalQueries int    `json:"local_queries"`
	Reason       string `json:"reason,omitempty"`
}

func (l *leakReport) String() string {
	switch {
	case !l.Run:
		return "not run: " + l.Reason
	case l.LocalQueries > 0:
		return fmt.Sprintf("DNS LEAK: this machine's resolver was asked %d time(s) for %s", l.LocalQueries, l.Name)
	}
	return fmt.Sprintf("this machine's resolver was asked 0 times for %s", l.Name)
}

func checkAction(c *cli.Context) error {
	file, _, err := configFile(c)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(c, file)
	if err != nil {
		return err
	}
	b, err := build(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return err
	}
	far, err := farSideDNS(c, cfg)
	if err != nil {
		return err
	}
	defer b.close()
	// The DNS-leak self-test: the chains look names up on this machine
	// through a resolver that counts what it is asked (hop names may
	// legitimately be looked up here; destination names never).
	local := &countingResolver{next: net.DefaultResolver}
	timeout := c.Duration("timeout")
	for _, d := range b.chains {
		if ch, ok := d.(*chain.Chain); ok {
			ch.Resolver = local
			ch.ConnectTimeout, ch.HandshakeTimeout = timeout, timeout
		}
	}
	// On a terminal, say what is being waited for: a silent hop costs
	// its timeout, once per step.
	progress := func(string, ...any) {}
	if f, ok := c.App.ErrWriter.(*os.File); ok && !c.Bool("json") && term.IsTerminal(int(f.Fd())) {
		progress = func(format string, args ...any) { fmt.Fprintf(f, format+"\n", args...) }
	}
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
		progress("checking chain %s: its hops, the exit, far-side DNS, a DNS-leak test (each step at most %v)...", name, timeout)
		r := checkChain(c.Context, name, ch, cfg.Chains[name].Mode, c.String("echo-url"), far, c.String("dns-domain"), timeout)
		if r.OK {
			progress("checking chain %s: the DNS-leak test...", name)
			leakTest(c.Context, &r, ch, local, c.String("dns-domain"))
		}
		allOK = allOK && r.OK
		reports = append(reports, r)
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{"ok": allOK, "chains": reports})
	} else {
		printReports(c.App.Writer, reports, c.String("echo-url") != "")
	}
	if !allOK {
		return cli.Exit("", 1)
	}
	return nil
}

// echoExit asks echoURL, through client, for the address it sees. The
// answer is a bare address, or a JSON object with one under a usual key;
// anything else is an error that does not repeat the body.
func echoExit(ctx context.Context, client *http.Client, echoURL string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", echoURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("--echo-url answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("--echo-url: %w", err)
	}
	if a, ok := parseEchoedAddr(body); ok {
		return a, nil
	}
	return "", errors.New("--echo-url answered no address: want a bare IP, or JSON with ip, origin, peer_ip or address")
}

// parseEchoedAddr finds the caller's address in an echo service's answer:
// a bare IP (with a port or not), or a JSON object whose ip, origin,
// peer_ip or address field holds one (the first of a list such as
// httpbin's "origin": "a, b").
func parseEchoedAddr(body []byte) (string, bool) {
	one := func(s string) (string, bool) {
		s, _, _ = strings.Cut(strings.TrimSpace(s), ",")
		s = strings.TrimSpace(s)
		if ip, err := netip.ParseAddr(s); err == nil {
			return ip.String(), true
		}
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return ap.Addr().String(), true
		}
		return "", false
	}
	if a, ok := one(string(body)); ok {
		return a, true
	}
	var obj map[string]any
	if json.Unmarshal(body, &obj) != nil {
		return "", false
	}
	for _, key := range []string{"ip", "origin", "peer_ip", "address"} {
		if v, ok := obj[key].(string); ok {
			if a, ok := one(v); ok {
				return a, true
			}
		}
	}
	return "", false
}

// dnsCheck is the far-side DNS test: which upstream, where that came
// from, and whether a failure fails the chain (when something relies on
// that upstream: a DNS front end, or the user's own --dns-upstream).
type dnsCheck struct {
	upstream string // "" skips the test
	from     string
	required bool
}

func farSideDNS(c *cli.Context, cfg *configs.Config) (dnsCheck, error) {
	switch {
	case c.Bool("no-dns"):
		return dnsCheck{}, nil
	case c.IsSet("dns-upstream"):
		u := c.String("dns-upstream")
		if _, _, err := net.SplitHostPort(u); err != nil {
			return dnsCheck{}, fmt.Errorf("--dns-upstream %q: want HOST:PORT, such as 9.9.9.9:53", u)
		}
		return dnsCheck{upstream: u, from: "--dns-upstream", required: true}, nil
	}
	frontEnd := slices.ContainsFunc(cfg.Listeners, func(l configs.Listener) bool { return l.DNS != "" })
	return dnsCheck{upstream: cfg.DNS.Upstream, from: "dns.upstream", required: frontEnd}, nil
}

func checkChain(ctx context.Context, name string, ch *chain.Chain, mode, echoURL string, far dnsCheck, domain string, timeout time.Duration) chainReport {
	if mode == "" {
		mode = "strict"
	}
	r := chainReport{Name: name, Mode: mode, OK: true}
	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	r.Hops = ch.Probe(pctx)
	for _, h := range r.Hops {
		if !h.Reachable || h.Err != "" { // a hop that answers but not as it should fails too
			r.OK = false
		}
	}
	if !r.OK {
		// The tests through the whole chain would fail on the same hop,
		// and say so again in other words: its row says it once.
		return r
	}
	if echoURL != "" {
		tr := &http.Transport{DialContext: ch.DialContext, Proxy: nil}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 3 * timeout}
		addr, err := echoExit(ctx, client, echoURL)
		if err == nil {
			r.Exit = addr
		} else {
			r.OK = false
			r.Err = append(r.Err, "exit address: "+err.Error())
		}
	}
	if far.upstream != "" {
		name := fmt.Sprintf("vc%08x.%s", rand.Uint32(), domain)
		s := &resolver.Server{Dialer: ch, Upstream: far.upstream, Timeout: 2 * timeout}
		m, err := s.Query(name, dns.TypeA)
		s.Shutdown(context.Background())
		r.DNS = &dnsReport{Upstream: far.upstream, From: far.from, Name: name}
		switch {
		case err == nil:
			r.DNS.Rcode = dns.RcodeToString[m.Rcode]
		case far.required:
			r.DNS.Error = err.Error()
			r.OK = false
			r.Err = append(r.Err, "far-side DNS: "+r.DNS.String())
		default:
			r.DNS.Error = err.Error()
			r.Warn = append(r.Warn, "far-side DNS: "+r.DNS.String()+"; "+
				"no DNS front end uses it, so the chain is not failed for it (ask another with --dns-upstream HOST:PORT, or skip with --no-dns)")
		}
	}
	return r
}

// leakTest asks for a fresh random name through a SOCKS5 front end on
// this chain, as a program would, and counts how often the chain's own
// resolver (local) was asked for it: it must be never. The test has run
// only if the name went all the way to the exit; when the chain failed
// before, it says so instead of a count that proves nothing.
func leakTest(ctx context.Context, r *chainReport, ch chain.Dialer, local *countingResolver, domain string) {
	name := fmt.Sprintf("leak%08x.%s", rand.Uint32(), domain)
	var mu sync.Mutex
	var chainErr error
	dialled := false
	front := &socks.Server{Dialer: chain.DialerFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := ch.DialContext(ctx, network, addr)
		mu.Lock()
		defer mu.Unlock()
		chainErr, dialled = err, true
		return conn, err
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.OK = false
		r.Err = append(r.Err, "DNS leak test: "+err.Error())
		return
	}
	go front.Serve(ln)
	client := &chain.Chain{Hops: []chain.Hop{&chain.SOCKS5{Address: ln.Addr().String()}}, HandshakeTimeout: 30 * time.Second}
	if conn, err := client.DialContext(ctx, "tcp", net.JoinHostPort(name, "80")); err == nil {
		conn.Close() // the exit may even reach it: the point is where it was resolved
	}
	// The client has its answer, so the dial is over; a relay to a
	// destination that keeps its end open is cut after a moment.
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	front.Shutdown(sctx)
	cancel()
	mu.Lock()
	defer mu.Unlock()
	r.Leak = &leakReport{Run: true, Name: name, LocalQueries: local.queries(name)}
	if r.Leak.LocalQueries != 0 {
		r.OK = false
		r.Err = append(r.Err, r.Leak.String())
		return
	}
	hop, isHop := errors.AsType[*chain.HopError](chainErr)
	switch {
	case !dialled:
		r.Leak.Run, r.Leak.Reason = false, "the test's request did not reach the chain"
	case chainErr != nil && !(isHop && hop.Destination):
		r.Leak.Run, r.Leak.Reason = false, "the chain did not take the test's name to its exit"
	}
}

// countingResolver is the chains' resolver in check: it passes lookups
// on to next, and counts the names asked for.
type countingResolver struct {
	next  chain.Resolver
	mu    sync.Mutex
	asked map[string]int
}

func (c *countingResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	c.mu.Lock()
	if c.asked == nil {
		c.asked = map[string]int{}
	}
	c.asked[strings.TrimSuffix(strings.ToLower(host), ".")]++
	c.mu.Unlock()
	return c.next.LookupNetIP(ctx, network, host)
}

func (c *countingResolver) queries(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.asked[strings.TrimSuffix(strings.ToLower(name), ".")]
}

// printReports prints the table; echoed says whether --echo-url was given.
func printReports(w io.Writer, reports []chainReport, echoed bool) {
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
		switch {
		case r.Exit != "":
			fmt.Fprintf(w, "  exit address: %s\n", r.Exit)
		case !echoed:
			fmt.Fprintln(w, "  exit address: not checked; give --echo-url URL, a page that answers with the caller's address\n"+
				"    (a bare IP, or JSON with ip, origin, peer_ip or address), for example one you host")
		}
		if r.DNS != nil && r.DNS.Error == "" { // a failure is an error or warning line below
			fmt.Fprintf(w, "  far-side DNS: %s\n", r.DNS)
		}
		if r.Leak != nil && r.Leak.LocalQueries == 0 { // a leak is an error line below
			fmt.Fprintf(w, "  DNS leak test: %s\n", r.Leak)
		}
		for _, e := range r.Err {
			fmt.Fprintf(w, "  error: %s\n", e)
		}
		for _, e := range r.Warn {
			fmt.Fprintf(w, "  warning: %s\n", e)
		}
	}
}
