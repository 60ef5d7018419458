package policy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"

	"github.com/veilchain/veilchain/chain"
)

// Router is the Dialer in front of the chains: the first rule that
// matches decides; with none, the listener's default chain carries the
// connection. It never resolves a name and never goes direct unless a
// rule written in the config says so.
type Router struct {
	// Chains by name; a rule or a listener default names one.
	Chains map[string]chain.Dialer
	// Defaults maps a listener name to its default chain.
	Defaults map[string]string
	// Direct dials for rules with direct: true; nil refuses them.
	Direct chain.Dialer

	tables atomic.Pointer[tables]
}

// tables are what a reload swaps while connections are live.
type tables struct {
	chains   map[string]chain.Dialer
	defaults map[string]string
	direct   chain.Dialer
	rules    []Rule
	block    *BlockList
}

// SetRules replaces the rules (which must be Normalized) and the block
// list (nil for none), keeping the chains. Connections already made keep
// their chain.
func (r *Router) SetRules(rules []Rule, block *BlockList) {
	t := r.load()
	r.tables.Store(&tables{chains: t.chains, defaults: t.defaults, direct: t.direct, rules: rules, block: block})
}

// Update replaces everything at once (a config reload): new connections
// take the new chains and rules; live ones keep what they had.
func (r *Router) Update(chains map[string]chain.Dialer, defaults map[string]string, direct chain.Dialer, rules []Rule, block *BlockList) {
	r.tables.Store(&tables{chains: chains, defaults: defaults, direct: direct, rules: rules, block: block})
}

// ChainsNow returns the chains by name that new connections use now
// (for a status view; the map must not be changed).
func (r *Router) ChainsNow() map[string]chain.Dialer { return r.load().chains }

func (r *Router) load() *tables {
	if t := r.tables.Load(); t != nil {
		return t
	}
	return &tables{chains: r.Chains, defaults: r.Defaults, direct: r.Direct}
}

// Decide returns the action for a connection to addr by client c, and
// the name of what decided it (a rule, the block list, the default).
func (r *Router) Decide(c Client, addr string) (Action, string, error) {
	return r.decide(r.load(), c, addr)
}

func (r *Router) decide(t *tables, c Client, addr string) (Action, string, error) {
	d, err := parseDest(addr)
	if err != nil {
		return Action{}, "", err
	}
	if t.block != nil && t.block.blocks(d) {
		return Action{Block: true}, "block list", nil
	}
	for i := range t.rules {
		if t.rules[i].matches(d, c) {
			return t.rules[i].Action, ruleName(i, &t.rules[i]), nil
		}
	}
	name, ok := t.defaults[c.Listener]
	if !ok {
		return Action{}, "", fmt.Errorf("%w: listener %q has no chain", chain.ErrBlocked, c.Listener)
	}
	return Action{Chain: name}, "default of listener " + c.Listener, nil
}

// DialContext implements chain.Dialer.
func (r *Router) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	t := r.load() // one config for the decision and the chain it names
	a, by, err := r.decide(t, ClientFrom(ctx), addr)
	switch {
	case err != nil:
		return nil, err
	case a.Block:
		return nil, fmt.Errorf("%w (%s)", chain.ErrBlocked, by)
	case a.Direct:
		if t.direct == nil {
			return nil, fmt.Errorf("%w (%s: direct connections are not enabled)", chain.ErrBlocked, by)
		}
		chain.TellChain(ctx, "direct")
		return t.direct.DialContext(ctx, network, addr)
	}
	d, ok := t.chains[a.Chain]
	if !ok {
		return nil, fmt.Errorf("%w (%s: no chain named %q)", chain.ErrBlocked, by, a.Chain)
	}
	chain.TellChain(ctx, a.Chain)
	return d.DialContext(ctx, network, addr)
}

func ruleName(i int, r *Rule) string {
	if r.Name != "" {
		return fmt.Sprintf("rule %d %q", i+1, r.Name)
	}
	return fmt.Sprintf("rule %d", i+1)
}

func parseDest(addr string) (dest, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return dest{}, fmt.Errorf("%w: %v", chain.ErrBadAddress, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return dest{}, fmt.Errorf("%w: bad port", chain.ErrBadAddress)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return dest{ip: ip.Unmap(), port: uint16(port)}, nil
	}
	name, err := CanonicalName(host)
	if err != nil {
		return dest{}, fmt.Errorf("%w: %v", chain.ErrBadAddress, err)
	}
	return dest{name: name, port: uint16(port)}, nil
}
