package main

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/configs"
	"github.com/veilchain/veilchain/policy"
)

// built is everything a config makes for the Router; a reload builds a
// new one and swaps it in.
type built struct {
	chains   map[string]chain.Dialer
	defaults map[string]string
	direct   chain.Dialer
	rules    []policy.Rule
	block    *policy.BlockList
	users    map[string]string
	checks   map[*chain.Chain]time.Duration // chains with periodic health checks
	log      *slog.Logger
}

// build makes the chains, rules, block lists and users of a config. The
// chains tell loops of their conns to first hops (nil: nobody is told).
func build(cfg *configs.Config, log *slog.Logger, loops *chain.LoopGuard) (*built, error) {
	b := &built{chains: map[string]chain.Dialer{}, defaults: map[string]string{}, users: cfg.Users,
		checks: map[*chain.Chain]time.Duration{}, log: log}
	for i, l := range cfg.Listeners {
		if _, ok := cfg.Chains[l.Chain]; !ok {
			if len(cfg.Chains) == 0 {
				return nil, noHops(cfg)
			}
			return nil, cfg.Errorf([]any{"listeners", i, "chain"}, "no chain named %q", l.Chain)
		}
		b.defaults[l.Name] = l.Chain
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Chains)) {
		d, err := buildChain(cfg, name, log, loops)
		if err != nil {
			return nil, err
		}
		b.chains[name] = d
		if c, ok := d.(*chain.Chain); ok && cfg.Chains[name].HealthCheck > 0 {
			b.checks[c] = cfg.Chains[name].HealthCheck
		}
	}
	var err error
	if b.rules, err = buildRules(cfg); err != nil {
		return nil, err
	}
	for _, rule := range b.rules {
		if rule.Action.Direct {
			log.Warn("a rule connects directly: its connections leave this machine WITHOUT any proxy", "rule", rule.Name)
			b.direct = &net.Dialer{Timeout: cfg.Timeouts.Connect}
		}
	}
	if b.block, err = policy.LoadBlockLists(cfg.BlockLists...); err != nil {
		return nil, cfg.Errorf([]any{"block_lists"}, "%v", err)
	}
	if _, err := policy.NewUsers(cfg.Users); err != nil {
		return nil, cfg.Errorf([]any{"users"}, "%v", err)
	}
	return b, nil
}

// apply swaps b into r and starts b's health checks and prebuilt
// circuits (until ctx ends, or b is closed).
func (b *built) apply(ctx context.Context, r *policy.Router, users *policy.Users) {
	r.Update(b.chains, b.defaults, b.direct, b.rules, b.block)
	users.SetHashes(b.users)
	for c, every := range b.checks {
		go c.CheckEvery(ctx, every)
	}
	for name, d := range b.chains {
		if c, ok := d.(*chain.Chain); ok {
			if err := c.StartPrebuild(ctx); err != nil {
				b.log.Warn("circuits are not built ahead for this chain", "chain", name, "err", err)
			}
		}
	}
}

// close lets go of what b's chains keep between dials (SSH hops'
// connections), each once its live streams end.
func (b *built) close() {
	for _, d := range b.chains {
		if c, ok := d.(*chain.Chain); ok {
			c.Close()
		}
	}
}

func buildChain(cfg *configs.Config, name string, log *slog.Logger, loops *chain.LoopGuard) (chain.Dialer, error) {
	ch := cfg.Chains[name]
	if ch.Direct {
		log.Warn("chain is direct: its connections leave this machine WITHOUT any proxy", "chain", name)
		return &net.Dialer{Timeout: cfg.Timeouts.Connect}, nil
	}
	mode, err := chain.ParseMode(ch.Mode)
	if err != nil {
		return nil, cfg.Errorf([]any{"chains", name, "mode"}, "%v", err)
	}
	c := &chain.Chain{Mode: mode, Length: ch.Length, Health: &chain.Health{Logger: log.With("chain", name)},
		ConnectTimeout: cfg.Timeouts.Connect, HandshakeTimeout: cfg.Timeouts.Handshake, LoopGuard: loops}
	if ch.ConnectTimeout > 0 {
		c.ConnectTimeout = ch.ConnectTimeout
	}
	if ch.HandshakeTimeout > 0 {
		c.HandshakeTimeout = ch.HandshakeTimeout
	}
	c.Prebuild, c.PrebuildIdle = ch.Prebuild, ch.PrebuildIdle
	var addrs []string
	for j, spec := range ch.Hops {
		var members []chain.Hop
		for _, raw := range spec.URLs() {
			h, err := chain.ParseHop(raw)
			if err != nil {
				return nil, cfg.Errorf([]any{"chains", name, "hops", j}, "%v", err)
			}
			members = append(members, h)
		}
		if spec.URL != "" {
			c.Hops = append(c.Hops, members[0])
			addrs = append(addrs, members[0].Addr())
			continue
		}
		sel, err := chain.ParseSelector(spec.Select)
		if err != nil {
			return nil, cfg.Errorf([]any{"chains", name, "hops", j, "select"}, "%v", err)
		}
		c.Hops = append(c.Hops, &chain.Pool{Members: members, Select: sel})
		var ms []string
		for _, m := range members {
			ms = append(ms, m.Addr())
		}
		addrs = append(addrs, "{"+strings.Join(ms, " | ")+"}")
	}
	log.Info("chain", "name", name, "mode", cmp.Or(ch.Mode, "strict"), "hops", strings.Join(addrs, " -> "))
	for _, w := range chain.PlainLinks(c.Hops) {
		log.Warn(w, "chain", name)
	}
	return c, nil
}

// buildRules turns the config's rules into policy rules.
func buildRules(cfg *configs.Config) ([]policy.Rule, error) {
	var rules []policy.Rule
	for i, rc := range cfg.Rules {
		r := policy.Rule{
			Name: rc.Name, Domains: rc.Domains, Suffixes: rc.Suffixes, Globs: rc.Globs,
			Listeners: rc.Listeners, Users: rc.Users,
			Action: policy.Action{Block: rc.Block, Direct: rc.Direct, Chain: rc.Chain},
		}
		for _, c := range rc.CIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return nil, cfg.Errorf([]any{"rules", i, "cidrs"}, "%v", err)
			}
			r.CIDRs = append(r.CIDRs, p.Masked())
		}
		for _, p := range rc.Ports {
			pr, err := policy.ParsePortRange(string(p))
			if err != nil {
				return nil, cfg.Errorf([]any{"rules", i, "ports"}, "%v", err)
			}
			r.Ports = append(r.Ports, pr)
		}
		if err := r.Normalize(); err != nil {
			return nil, cfg.Errorf([]any{"rules", i}, "%v", err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// reloader re-reads the config (file and flags) when asked, one reload at
// a time: by the control endpoint (reload, which says how it went), or
// by reloadRequests (SIGHUP on Unix; on Windows, which has no SIGHUP, a
// change to the config or a block list). It swaps chains, rules, block
// lists and users in: new connections use them, live ones keep their
// chain. A config that fails to load or build is logged and the running
// one stays. Listener addresses are not changed by a reload. The config
// it replaces is closed (cur is the one running at first), and the last
// one when it stops.
func reloader(load func() (*configs.Config, error), build func(*configs.Config) (*built, error), cur *built, r *policy.Router, users *policy.Users,
	stopChecks context.CancelFunc, afterReload func(), log *slog.Logger) (reload func() error, stop func()) {
	signals, stopSignals := reloadRequests(load)
	asked := make(chan chan error)
	done := make(chan struct{})
	apply := func() error {
		cfg, err := load()
		var b *built
		if err == nil {
			b, err = build(cfg)
		}
		if err != nil {
			log.Error("reload failed: the running config stays", "err", err)
			return err
		}
		stopChecks()
		var ctx context.Context
		ctx, stopChecks = context.WithCancel(context.Background())
		b.apply(ctx, r, users)
		cur.close()
		cur = b
		afterReload()
		log.Info("reload: config applied", "chains", len(b.chains), "rules", len(b.rules), "blocked", b.block.Len())
		return nil
	}
	go func() {
		for {
			select {
			case <-signals:
				apply()
			case reply := <-asked:
				reply <- apply()
			case <-done:
				stopChecks()
				cur.close()
				return
			}
		}
	}()
	reload = func() error {
		reply := make(chan error, 1)
		select {
		case asked <- reply:
			return <-reply
		case <-done:
			return errors.New("veilchain is stopping")
		}
	}
	return reload, func() {
		stopSignals()
		close(done)
	}
}
