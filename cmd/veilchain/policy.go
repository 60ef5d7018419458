package main

import (
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/configs"
	"github.com/veilchain/veilchain/policy"
)

// buildPolicy makes the chains, the rules and the users of a config into
// the Router every front end dials through.
func buildPolicy(cfg *configs.Config, log *slog.Logger) (*policy.Router, *policy.Users, error) {
	r := &policy.Router{Chains: map[string]chain.Dialer{}, Defaults: map[string]string{}}
	for i, l := range cfg.Listeners {
		if _, ok := cfg.Chains[l.Chain]; !ok {
			if len(cfg.Chains) == 0 {
				return nil, nil, errNoHops
			}
			return nil, nil, cfg.Errorf([]any{"listeners", i, "chain"}, "no chain named %q", l.Chain)
		}
		r.Defaults[l.Name] = l.Chain
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Chains)) {
		d, err := buildChain(cfg, name, log)
		if err != nil {
			return nil, nil, err
		}
		r.Chains[name] = d
	}
	rules, err := buildRules(cfg)
	if err != nil {
		return nil, nil, err
	}
	for _, rule := range rules {
		if rule.Action.Direct {
			log.Warn("a rule connects directly: its connections leave this machine WITHOUT any proxy", "rule", rule.Name)
			r.Direct = &net.Dialer{Timeout: cfg.Timeouts.Connect}
		}
	}
	block, err := policy.LoadBlockLists(cfg.BlockLists...)
	if err != nil {
		return nil, nil, err
	}
	r.SetRules(rules, block)
	users, err := policy.NewUsers(cfg.Users)
	if err != nil {
		return nil, nil, cfg.Errorf([]any{"users"}, "%v", err)
	}
	return r, users, nil
}

func buildChain(cfg *configs.Config, name string, log *slog.Logger) (chain.Dialer, error) {
	ch := cfg.Chains[name]
	if ch.Direct {
		log.Warn("chain is direct: its connections leave this machine WITHOUT any proxy", "chain", name)
		return &net.Dialer{Timeout: cfg.Timeouts.Connect}, nil
	}
	c := &chain.Chain{ConnectTimeout: cfg.Timeouts.Connect, HandshakeTimeout: cfg.Timeouts.Handshake}
	var addrs []string
	for j, raw := range ch.Hops {
		h, err := chain.ParseHop(raw)
		if err != nil {
			return nil, cfg.Errorf([]any{"chains", name, "hops", j}, "%v", err)
		}
		c.Hops = append(c.Hops, h)
		addrs = append(addrs, h.Addr())
	}
	log.Info("chain", "name", name, "hops", strings.Join(addrs, " -> "))
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

// reloadOnSIGHUP re-reads the block lists on SIGHUP. Live connections keep
// their chain; a list that fails to load leaves the old one in place.
func reloadOnSIGHUP(cfg *configs.Config, r *policy.Router, log *slog.Logger) (stop func()) {
	rules, _ := buildRules(cfg)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				block, err := policy.LoadBlockLists(cfg.BlockLists...)
				if err != nil {
					log.Error("reload: block lists not reloaded, the old ones stay", "err", err)
					continue
				}
				r.SetRules(rules, block)
				log.Info("reload: block lists re-read", "entries", block.Len())
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}
