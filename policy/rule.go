package policy

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

// Rule matches connections and says what to do with them. Within one
// field any value matches; across fields all non-empty fields must match
// (domains, suffixes, globs and CIDRs together are the "destination" field).
type Rule struct {
	Name      string
	Domains   []string       // exact names
	Suffixes  []string       // ".example.com": example.com and every name under it
	Globs     []string       // "*.example.*": path.Match patterns on the whole name
	CIDRs     []netip.Prefix // literal IP destinations only: a name never matches
	Ports     []PortRange
	Listeners []string
	Users     []string
	Action    Action
}

// Action is what a matching rule does.
type Action struct {
	Block  bool
	Direct bool
	Chain  string
}

func (a Action) String() string {
	switch {
	case a.Block:
		return "block"
	case a.Direct:
		return "direct"
	}
	return "chain " + a.Chain
}

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// ParsePortRange reads "443" or "8000-8999".
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	l, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	h := l
	var err2 error
	if isRange {
		h, err2 = strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	}
	if err1 != nil || err2 != nil || l == 0 || h < l {
		return PortRange{}, fmt.Errorf("port range %q: want PORT or LOW-HIGH within 1-65535", s)
	}
	return PortRange{uint16(l), uint16(h)}, nil
}

// CanonicalName lowercases a name, drops a final dot and turns an IDN
// into punycode, so rules and destinations compare as DNS does.
func CanonicalName(name string) (string, error) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if isASCII(name) {
		// Already in DNS form. IDNA's checks would refuse real names
		// such as _dmarc.example.com, so they are not applied here.
		return name, nil
	}
	ascii, err := idna.Lookup.ToASCII(name)
	if err != nil {
		return "", fmt.Errorf("name %q: %w", name, err)
	}
	return ascii, nil
}

// Normalize puts the rule's names in canonical form; call it once when
// building rules from config.
func (r *Rule) Normalize() error {
	for _, list := range []*[]string{&r.Domains, &r.Suffixes, &r.Globs} {
		for i, n := range *list {
			lead := strings.HasPrefix(n, ".")
			c, err := CanonicalName(strings.TrimPrefix(n, "."))
			if list == &r.Globs { // '*' is not valid IDNA: only fold case
				c, err = strings.TrimSuffix(strings.ToLower(n), "."), nil
				lead = false
			}
			if err != nil {
				return err
			}
			if lead || list == &r.Suffixes {
				c = "." + c
			}
			(*list)[i] = c
		}
	}
	for _, g := range r.Globs {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("glob %q: %w", g, err)
		}
	}
	return nil
}

// dest is a destination as rules see it.
type dest struct {
	name string     // canonical name, or "" for an IP literal
	ip   netip.Addr // valid for an IP literal
	port uint16
}

func (r *Rule) matches(d dest, c Client) bool {
	if len(r.Listeners) > 0 && !slices.Contains(r.Listeners, c.Listener) {
		return false
	}
	if len(r.Users) > 0 && !slices.Contains(r.Users, c.User) {
		return false
	}
	if len(r.Ports) > 0 && !slices.ContainsFunc(r.Ports, func(p PortRange) bool { return p.Lo <= d.port && d.port <= p.Hi }) {
		return false
	}
	if len(r.Domains)+len(r.Suffixes)+len(r.Globs)+len(r.CIDRs) == 0 {
		return true
	}
	if d.ip.IsValid() {
		return slices.ContainsFunc(r.CIDRs, func(p netip.Prefix) bool { return p.Contains(d.ip) })
	}
	return slices.Contains(r.Domains, d.name) ||
		slices.ContainsFunc(r.Suffixes, func(s string) bool { return d.name == s[1:] || strings.HasSuffix(d.name, s) }) ||
		slices.ContainsFunc(r.Globs, func(g string) bool { ok, _ := path.Match(g, d.name); return ok })
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
