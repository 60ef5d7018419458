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

// tables are what SIGHUP can swap while connections are live.
type tables struct {
	rules []Rule
	block *BlockList
}

// SetRules replaces the rules (which must be Normalized) and the block
// list (nil for none). Connections already made keep their chain.
func (r *Router) SetRules(rules []Rule, block *BlockList) {
	r.tables.Store(&tables{rules: rules, block: block})
}

// Decide returns the action for a connection to addr by client c, and
// the name of what decided it (a rule, the block list, the default).
func (r *Router) Decide(c Client, addr string) (Action, string, error) {
	d, err := parseDest(addr)
	if err != nil {
		return Action{}, "", err
	}
	if t := r.tables.Load(); t != nil {
		if t.block != nil && t.block.blocks(d) {
			return Action{Block: true}, "block list", nil
		}
		for i := range t.rules {
			if t.rules[i].matches(d, c) {
				return t.rules[i].Action, ruleName(i, &t.rules[i]), nil
			}
		}
	}
	name, ok := r.Defaults[c.Listener]
	if !ok {
		return Action{}, "", fmt.Errorf("%w: listener %q has no chain", chain.ErrBlocked, c.Listener)
	}
	return Action{Chain: name}, "default of listener " + c.Listener, nil
}

// DialContext implements chain.Dialer.
func (r *Router) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	a, by, err := r.Decide(ClientFrom(ctx), addr)
	switch {
	case err != nil:
		return nil, err
	case a.Block:
		return nil, fmt.Errorf("%w (%s)", chain.ErrBlocked, by)
	case a.Direct:
		if r.Direct == nil {
			return nil, fmt.Errorf("%w (%s: direct connections are not enabled)", chain.ErrBlocked, by)
		}
		return r.Direct.DialContext(ctx, network, addr)
	}
	d, ok := r.Chains[a.Chain]
	if !ok {
		return nil, fmt.Errorf("%w (%s: no chain named %q)", chain.ErrBlocked, by, a.Chain)
	}
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
