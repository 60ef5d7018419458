package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/configs"
	"github.com/veilchain/veilchain/policy"
	"github.com/veilchain/veilchain/resolver"
)

// frontDialer is what the front ends dial through. With a fake-ip DNS
// front end it is Unmap in front of next, so a fake address handed out
// reaches policy and the chain as its name again, and its pool (shared by
// every listener, so a fake address works whichever front end receives
// it), for the DNS front ends; the ranges are then reserved, which it
// logs. Without one, nothing hands fake addresses out and nothing is
// reserved: next itself, and no pool.
func frontDialer(cfg *configs.Config, next chain.Dialer, log *slog.Logger) (chain.Dialer, *resolver.FakePool) {
	pool := fakePool(cfg)
	if pool == nil {
		return next, nil
	}
	log.Info("fake-ip DNS: connections to these ranges are taken for the names handed out, and refused when they map to none",
		"ipv4", pool.V4, "ipv6", pool.V6)
	return resolver.Unmap(next, pool), pool
}

// fakePool is the fake-ip ranges of the config, or nil when no listener
// has a DNS front end in fake-ip mode.
func fakePool(cfg *configs.Config) *resolver.FakePool {
	if cfg.DNS.Mode != "fake-ip" || !slices.ContainsFunc(cfg.Listeners, func(l configs.Listener) bool { return l.DNS != "" }) {
		return nil
	}
	p := &resolver.FakePool{}
	if v, err := netip.ParsePrefix(cfg.DNS.FakeIPv4); err == nil {
		p.V4 = v.Masked()
	}
	if v, err := netip.ParsePrefix(cfg.DNS.FakeIPv6); err == nil {
		p.V6 = v.Masked()
	}
	return p
}

// startDNS starts the listeners' DNS front ends. A DNS front end has no
// authentication, so off loopback it needs --allow-open (else it would be
// an open resolver, and an amplifier).
func startDNS(cfg *configs.Config, router *policy.Router, pool *resolver.FakePool, allowOpen bool, log *slog.Logger) ([]*resolver.Server, error) {
	var servers []*resolver.Server
	for _, l := range cfg.Listeners {
		if l.DNS == "" {
			continue
		}
		if !isLoopback(l.DNS) && !allowOpen {
			return servers, fmt.Errorf("listener %q: dns %s is not a loopback address: a DNS front end has no auth; listen on 127.0.0.1 or give --allow-open", l.Name, l.DNS)
		}
		client := policy.Client{Listener: l.Name}
		s := &resolver.Server{
			Dialer:        router,
			Upstream:      cfg.DNS.Upstream,
			Context:       policy.WithClient(context.Background(), client),
			BlockWithZero: cfg.DNS.BlockedAnswer == "zero",
			Blocked: func(name string) bool {
				a, _, err := router.Decide(client, name+":0")
				return err != nil || a.Block
			},
			Timeout: cfg.Timeouts.Handshake,
			Logger:  log.With("listener", l.Name),
		}
		if cfg.DNS.Mode == "fake-ip" {
			s.Pool = pool
		}
		addr, err := s.Listen(l.DNS)
		if err != nil {
			return servers, fmt.Errorf("listener %q: dns: %w", l.Name, err)
		}
		servers = append(servers, s)
		log.Info("DNS front end listening", "listener", l.Name, "addr", addr, "mode", cfg.DNS.Mode, "chain", l.Chain)
	}
	return servers, nil
}
