package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/configs"
	"github.com/veilchain/veilchain/policy"
)

func explainCommand() *cli.Command {
	return &cli.Command{
		Name:      "explain",
		Usage:     "say what would happen to a connection to HOST:PORT, and why, without making one",
		ArgsUsage: "HOST:PORT",
		Description: "Runs the config's policy on HOST:PORT as the listener's front ends would: blocked (by which list or rule),\n" +
			"or which chain carries it, its mode and hops, where the name is resolved and which timeouts apply.\n" +
			"Nothing is dialled, no health check runs, no name is looked up. Example: veilchain explain -c my.yaml www.example.com:443",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "YAML config `FILE`"},
			&cli.StringFlag{Name: "listener", Usage: "the listener `NAME` the connection comes in on", DefaultText: "the first listener"},
			&cli.StringFlag{Name: "user", Usage: "the front-end user `NAME` the client logged in as (listeners with auth: true)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of text"},
		},
		Action: explainAction,
	}
}

// explanation is what explain prints: the decision, and what follows from it.
type explanation struct {
	Destination string `json:"destination"`
	Listener    string `json:"listener"`
	User        string `json:"user,omitempty"`
	// Action is block, chain, direct, or fake-ip (decided by the running
	// process on the name the fake address stands for).
	Action string `json:"action"`
	// DecidedBy is the policy's own account: "rule 2 \"ads\"", "block
	// list", "default of listener NAME".
	DecidedBy string     `json:"decided_by,omitempty"`
	Rule      *ruleRef   `json:"rule,omitempty"`
	BlockList string     `json:"block_list,omitempty"` // the file whose entry blocks it
	Chain     *chainPlan `json:"chain,omitempty"`
	Names     string     `json:"name_resolution"`
	FakeIP    string     `json:"fake_ip"`
	Timeouts  []timeout  `json:"timeouts,omitempty"`
	Notes     []string   `json:"notes,omitempty"`
}

type ruleRef struct {
	Index int    `json:"index"` // 1-based, as the policy's messages count
	Name  string `json:"name,omitempty"`
}

type chainPlan struct {
	Name   string    `json:"name"`
	Direct bool      `json:"direct,omitempty"`
	Mode   string    `json:"mode,omitempty"`
	Length int       `json:"length,omitempty"` // hops per connection (random, round-robin)
	Hops   []hopPlan `json:"hops,omitempty"`
}

type hopPlan struct {
	Position int      `json:"position"`
	URL      string   `json:"url,omitempty"`    // a single hop, password hidden
	Pool     []string `json:"pool,omitempty"`   // a pool's members, passwords hidden
	Select   string   `json:"select,omitempty"` // how a pool picks a member
	Link     []string `json:"link"`             // per URL: how the link to it is protected
	// Handshake is this position's handshake timeout (the hop's ?timeout=,
	// else the chain's).
	Handshake string `json:"handshake_timeout"`
}

type timeout struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	From  string `json:"from"`
}

func explainAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("explain takes one HOST:PORT (see veilchain help explain), got %d arguments", c.NArg())
	}
	cfg, err := loadUserConfig(c)
	if err != nil {
		return err
	}
	e, err := explain(cfg, c.String("listener"), c.String("user"), c.Args().First())
	if err != nil {
		return err
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(e)
	}
	e.print(c.App.Writer)
	return nil
}

// explain decides addr for a client of listener (the first if "") as
// the running process would, on a router built from cfg with no health
// checks started and nothing dialled.
func explain(cfg *configs.Config, listener, user, addr string) (*explanation, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%q: want HOST:PORT, such as www.example.com:443: %w", addr, err)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return nil, fmt.Errorf("%q: port %q is not 1-65535", addr, port)
	}
	l, err := findListener(cfg, listener)
	if err != nil {
		return nil, err
	}
	b, err := build(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return nil, err
	}
	e := &explanation{Destination: addr, Listener: l.Name}
	client := policy.Client{Listener: l.Name}
	if user != "" {
		if l.Auth {
			if _, ok := cfg.Users[user]; !ok {
				return nil, fmt.Errorf("--user: the config's users has no %q", user)
			}
			client.User, e.User = user, user
		} else {
			e.Notes = append(e.Notes, fmt.Sprintf("listener %q has no auth: its clients have no user, so --user %s is not used and rules with users: do not match", l.Name, user))
		}
	}

	ip, ipErr := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	isIP := ipErr == nil
	if isIP {
		ip = ip.Unmap()
	}
	if pool := fakePool(cfg); isIP && pool != nil {
		if r := fakeRange(pool.V4, pool.V6, ip); r.IsValid() {
			// The front ends turn a fake address back into its name before
			// policy sees it; explain has no access to that mapping.
			e.Action = "fake-ip"
			e.FakeIP = fmt.Sprintf("yes: %s is in the fake-ip range %s of the DNS front end. The running veilchain decides on the name "+
				"it handed this address out for, and refuses the address if it stands for no name; explain cannot see that mapping "+
				"(it lives in the running process): run explain on the name instead", ip, r)
			e.Names = "the name behind the fake address goes down the chain as a name and is resolved by the exit"
			return e, nil
		}
	}
	switch {
	case !isIP:
		e.FakeIP = "no: a name, not an address"
	case inPrefix(cfg.DNS.FakeIPv4, ip) || inPrefix(cfg.DNS.FakeIPv6, ip):
		e.FakeIP = "no: the address is in the fake-ip range, but no listener has a fake-ip DNS front end, so it is an ordinary address"
	default:
		e.FakeIP = "no"
	}

	r := &policy.Router{}
	r.Update(b.chains, b.defaults, b.direct, b.rules, b.block)
	a, by, err := r.Decide(client, addr)
	if err != nil {
		return nil, err
	}
	e.DecidedBy = by
	var n int
	if _, err := fmt.Sscanf(by, "rule %d", &n); err == nil && n >= 1 && n <= len(cfg.Rules) {
		e.Rule = &ruleRef{Index: n, Name: cfg.Rules[n-1].Name}
	}
	if isIP && slices.ContainsFunc(cfg.Rules, func(r configs.Rule) bool { return len(r.CIDRs) > 0 }) {
		e.Notes = append(e.Notes, "cidrs: rules match destinations given as addresses only, as this one is")
	} else if !isIP && slices.ContainsFunc(cfg.Rules, func(r configs.Rule) bool { return len(r.CIDRs) > 0 }) {
		e.Notes = append(e.Notes, "rules with cidrs: never match a name: it is not resolved to decide")
	}
	switch {
	case a.Block:
		e.Action = "block"
		if by == "block list" {
			e.BlockList = whichBlockList(cfg.BlockLists, client, addr)
		}
		e.Names = "not resolved anywhere: the connection is refused before any chain is asked"
		return e, nil
	case a.Direct:
		e.Action = "direct"
		e.Names = directNames(isIP)
		e.Timeouts = []timeout{{"connect", cfg.Timeouts.Connect.String(), "timeouts.connect"}}
		e.Notes = append(e.Notes, "a direct rule: this connection leaves this machine WITHOUT any proxy")
		return e, nil
	}
	e.Action = "chain"
	e.Chain, e.Timeouts = planChain(cfg, a.Chain, b.chains[a.Chain])
	if e.Chain.Direct {
		e.Names = directNames(isIP)
		e.Notes = append(e.Notes, fmt.Sprintf("chain %q is direct: this connection leaves this machine WITHOUT any proxy", a.Chain))
	} else if isIP {
		e.Names = "an address: nothing to resolve; the exit connects to it"
	} else {
		e.Names = "the name goes down the chain as a name and is resolved by the exit; nothing on this machine looks it up"
	}
	e.Timeouts = append(e.Timeouts, timeout{"tunnel idle", durationOrNever(cfg.Timeouts.TunnelIdle), "timeouts.tunnel_idle (SOCKS and CONNECT tunnels)"},
		timeout{"idle", cfg.Timeouts.Idle.String(), "timeouts.idle (plain HTTP through the HTTP front end)"})
	return e, nil
}

func directNames(isIP bool) string {
	if isIP {
		return "an address: nothing to resolve; this machine connects to it itself"
	}
	return "resolved by THIS machine's resolver: a direct connection has no exit to do it"
}

// planChain describes the chain named name, as built (d) and as written.
func planChain(cfg *configs.Config, name string, d chain.Dialer) (*chainPlan, []timeout) {
	spec := cfg.Chains[name]
	p := &chainPlan{Name: name}
	c, ok := d.(*chain.Chain)
	if spec.Direct || !ok {
		p.Direct = true
		return p, []timeout{{"connect", cfg.Timeouts.Connect.String(), "timeouts.connect"}}
	}
	p.Mode = cmp.Or(spec.Mode, "strict")
	if c.Mode == chain.Random || c.Mode == chain.RoundRobin {
		p.Length = cmp.Or(c.Length, len(c.Hops))
	}
	from := func(chainField, global string, set bool) string {
		if set {
			return "chains." + name + "." + chainField
		}
		return "timeouts." + global
	}
	touts := []timeout{
		{"connect", c.ConnectTimeout.String(), from("connect_timeout", "connect", spec.ConnectTimeout > 0) + " (TCP to the first hop)"},
		{"handshake", c.HandshakeTimeout.String(), from("handshake_timeout", "handshake", spec.HandshakeTimeout > 0) + " (each hop, unless its ?timeout= says otherwise)"},
	}
	for j, h := range c.Hops {
		hp := hopPlan{Position: j + 1, Handshake: c.HandshakeTimeout.String()}
		members := []chain.Hop{h}
		if pool, ok := h.(*chain.Pool); ok {
			members = pool.Members
			hp.Select = cmp.Or(spec.Hops[j].Select, "failover")
			for _, raw := range spec.Hops[j].Pool {
				hp.Pool = append(hp.Pool, redactHopURL(raw))
			}
		} else {
			hp.URL = redactHopURL(spec.Hops[j].URL)
		}
		var per []string
		own := false
		for _, m := range members {
			hp.Link = append(hp.Link, linkText(chain.Security(m)))
			d := c.HandshakeTimeout
			if t, ok := m.(interface{ HandshakeTimeout() time.Duration }); ok && t.HandshakeTimeout() > 0 {
				d, own = t.HandshakeTimeout(), true
			}
			per = append(per, d.String())
		}
		switch {
		case own && len(per) > 1:
			hp.Handshake = strings.Join(per, ", ") + " (per member; ?timeout= where given)"
		case own:
			hp.Handshake = per[0] + " (?timeout=)"
		}
		p.Hops = append(p.Hops, hp)
	}
	return p, touts
}

func linkText(security string) string {
	if security == "" {
		return "plain"
	}
	return "encrypted (" + security + ")"
}

func durationOrNever(d time.Duration) string {
	if d <= 0 {
		return "never"
	}
	return d.String()
}

// whichBlockList names the block-list file that blocks addr.
func whichBlockList(paths []string, c policy.Client, addr string) string {
	for _, p := range paths {
		bl, err := policy.LoadBlockLists(p)
		if err != nil {
			continue
		}
		r := &policy.Router{}
		r.Update(nil, map[string]string{c.Listener: ""}, nil, nil, bl)
		if a, _, err := r.Decide(c, addr); err == nil && a.Block {
			return p
		}
	}
	return ""
}

// redactHopURL hides a hop URL's password (split at the last '@' before
// the query, as chain.ParseHop splits it).
func redactHopURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	authority, query, hasQuery := strings.Cut(rest, "?")
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return raw
	}
	user, _, hasPass := strings.Cut(authority[:at], ":")
	shown := scheme + "://" + user
	if hasPass {
		shown += ":xxxxx"
	}
	shown += authority[at:]
	if hasQuery {
		shown += "?" + query
	}
	return shown
}

func fakeRange(v4, v6 netip.Prefix, ip netip.Addr) netip.Prefix {
	for _, p := range []netip.Prefix{v4, v6} {
		if p.IsValid() && p.Contains(ip) {
			return p
		}
	}
	return netip.Prefix{}
}

func inPrefix(cidr string, ip netip.Addr) bool {
	p, err := netip.ParsePrefix(cidr)
	return err == nil && p.Contains(ip)
}

func (e *explanation) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	who := e.Listener
	if e.User != "" {
		who += ", user " + e.User
	}
	row("destination", "%s (listener %s)", e.Destination, who)
	switch e.Action {
	case "block":
		by := e.DecidedBy
		if e.BlockList != "" {
			by += " " + e.BlockList
		}
		row("decision", "REFUSED by %s", by)
	case "direct":
		row("decision", "DIRECT, without any proxy (%s)", e.DecidedBy)
	case "fake-ip":
		row("decision", "decided by the running veilchain on the name behind the fake address")
	default:
		row("decision", "chain %q (%s)", e.Chain.Name, e.DecidedBy)
	}
	if ch := e.Chain; ch != nil && !ch.Direct {
		mode := ch.Mode
		if ch.Length > 0 {
			mode += fmt.Sprintf(", %d hops per connection", ch.Length)
		}
		row("chain", "%s, mode %s", ch.Name, mode)
		for i, h := range ch.Hops {
			k := fmt.Sprintf("  hop %d", h.Position)
			if i == len(ch.Hops)-1 && ch.Length == 0 {
				k += " (exit)"
			}
			if h.URL != "" {
				row(k, "%s  [%s; handshake %s]", h.URL, h.Link[0], h.Handshake)
				continue
			}
			row(k, "pool, one member per connection by %s  [handshake %s]", h.Select, h.Handshake)
			for j, m := range h.Pool {
				row("", "  %s  [%s]", m, h.Link[j])
			}
		}
	}
	row("names", "%s", e.Names)
	row("fake-ip", "%s", e.FakeIP)
	for _, t := range e.Timeouts {
		row("timeout", "%s %s, from %s", t.Name, t.Value, t.From)
	}
	for _, n := range e.Notes {
		row("note", "%s", n)
	}
	tw.Flush()
}
