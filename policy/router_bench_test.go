package policy

import (
	"fmt"
	"net/netip"
	"testing"
)

// BenchmarkDecide: 100 suffix rules, 10 CIDR rules, a 10,000-name block
// list; the destination matches none (the slowest path: every rule tried).
func BenchmarkDecide(b *testing.B) {
	var rules []Rule
	for i := range 100 {
		r := Rule{Suffixes: []string{fmt.Sprintf(".site%d.example", i)}, Action: Action{Chain: "a"}}
		r.Normalize()
		rules = append(rules, r)
	}
	for i := range 10 {
		rules = append(rules, Rule{CIDRs: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", i))}, Action: Action{Block: true}})
	}
	bl := &BlockList{names: map[string]bool{}}
	for i := range 10000 {
		bl.names[fmt.Sprintf("ads%d.example", i)] = true
	}
	r := &Router{Defaults: map[string]string{"l": "a"}}
	r.SetRules(rules, bl)
	c := Client{Listener: "l"}
	b.ReportAllocs()
	for b.Loop() {
		if a, _, err := r.Decide(c, "www.unmatched.example.org:443"); err != nil || a.Chain != "a" {
			b.Fatal(a, err)
		}
	}
}
