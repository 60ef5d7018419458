package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/veilchain/veilchain/configs"
	"github.com/veilchain/veilchain/policy"
)

func pacCommand() *cli.Command {
	return &cli.Command{
		Name:  "pac",
		Usage: "print a proxy auto-config (PAC) file for browsers, made from the policy",
		Description: "Every answer is the listener's own proxies (\"SOCKS5 host:port; PROXY host:port\"), which carry or\n" +
			"refuse each connection by the policy, except DIRECT for destinations a direct: true rule sends\n" +
			"out without the chain; no answer ever falls back to DIRECT. The HTTP front end serves the same\n" +
			"file at http://ITS-ADDRESS/proxy.pac (for --proxy-pac-url or a browser's automatic proxy setting).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "YAML config `FILE`"},
			&cli.StringFlag{Name: "listener", Usage: "the listener `NAME` whose proxies the file names", DefaultText: "the first listener"},
		},
		Action: pacAction,
	}
}

func pacAction(c *cli.Context) error {
	cfg, err := loadUserConfig(c)
	if err != nil {
		return err
	}
	l, err := findListener(cfg, c.String("listener"))
	if err != nil {
		return err
	}
	socksAddr, httpAddr := cmp.Or(l.Socks, l.Mixed), cmp.Or(l.HTTP, l.Mixed)
	for _, a := range []string{socksAddr, httpAddr} {
		if strings.HasSuffix(a, ":0") {
			return fmt.Errorf("listener %q listens on %s, a port chosen at start: fetch the running front end's http://ADDRESS/proxy.pac instead", l.Name, a)
		}
	}
	pac, err := makePAC(cfg, l.Name, socksAddr, httpAddr)
	if err != nil {
		return err
	}
	_, err = c.App.Writer.Write(pac)
	return err
}

// pacServer is the PAC the HTTP front end of listener serves: made from
// the config now in force (current, read at each request so that a
// reload changes it), for the front ends' bound addresses (read at each
// request too: they are known once every one is listening).
func pacServer(current func() *configs.Config, listener string, socksAddr, httpAddr *string) func() []byte {
	return func() []byte {
		pac, err := makePAC(current(), listener, *socksAddr, *httpAddr)
		if err != nil {
			// Only a config that no longer builds; it would not have loaded.
			return []byte("function FindProxyForURL(url, host) { return \"PROXY 127.0.0.1:9\"; }\n")
		}
		return pac
	}
}

// makePAC writes the PAC file of listener, whose front ends are at
// socksAddr and httpAddr (either may be "").
//
// The file's one rule of safety: every answer is this listener's own
// proxies, which apply the whole policy themselves (block lists, users,
// fake addresses, chains), except DIRECT for what a direct: true rule
// would send out without the chain anyway. So the file may send more to
// the proxies than needed, never more to DIRECT: a rule it cannot judge
// exactly (one with users:, a glob with a [class], a port it cannot tell
// from the URL) is taken to match when it leads to the proxies and not
// to match when it says direct. Names are matched as the policy matches
// them and never resolved (the file calls no dnsResolve, isInNet or
// myIpAddress); fake-ip ranges are left out of every range, so their
// addresses go to the proxies, which know their names.
func makePAC(cfg *configs.Config, listener, socksAddr, httpAddr string) ([]byte, error) {
	if socksAddr == "" && httpAddr == "" {
		return nil, fmt.Errorf("listener %q has neither a SOCKS nor an HTTP front end", listener)
	}
	rules, err := buildRules(cfg)
	if err != nil {
		return nil, err
	}
	var proxies []string
	if socksAddr != "" {
		proxies = append(proxies, "SOCKS5 "+clientAddr(socksAddr))
	}
	if httpAddr != "" {
		proxies = append(proxies, "PROXY "+clientAddr(httpAddr))
	}
	// The HTTP proxy first for refusals: browsers show its 403, naming the rule.
	refusing := slices.Clone(proxies)
	slices.Reverse(refusing)
	var fake []netip.Prefix
	if pool := fakePool(cfg); pool != nil {
		fake = []netip.Prefix{pool.V4, pool.V6}
	}

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("// veilchain proxy auto-config for listener %s, made from its policy.", jsString(listener))
	p("// Every answer is this listener's proxies, which carry or refuse each connection by the whole")
	p("// policy, except DIRECT where a direct: true rule sends a destination out without the chain.")
	p("// Nothing here resolves a name; no answer falls back to DIRECT.")
	p("var PROXIES = %s;", jsString(strings.Join(proxies, "; ")))
	p("var REFUSED = %s;", jsString(strings.Join(refusing, "; ")))
	p("var DIRECT_ = \"DIRECT\";")
	b.WriteString(pacHelpers)
	p("// A script error would make browsers go DIRECT: any error answers PROXIES.")
	p("function FindProxyForURL(url, host) {")
	p("  try { return decide(String(url), String(host)); } catch (e) { return PROXIES; }")
	p("}")
	p("function decide(url, host) {")
	p("  var h = host.toLowerCase();")
	p("  // Rules hold names in punycode: a name in other letters is left to the proxies.")
	p("  if (/[^\\x00-\\x7f]/.test(h)) return PROXIES;")
	p("  if (h.charAt(0) == \"[\") h = h.slice(1, -1);")
	p("  // As policy reads a destination: a final dot makes a name, never an address.")
	p("  var dotted = h.charAt(h.length - 1) == \".\";")
	p("  if (dotted) h = h.slice(0, -1);")
	p("  var ip = dotted ? null : parseIP(h);")
	p("  var port = portOf(url);")
	hasDirect := slices.ContainsFunc(rules, func(r policy.Rule) bool { return r.Action.Direct && len(r.Users) == 0 })
	if hasDirect && len(cfg.BlockLists) > 0 {
		names, prefixes, err := blockListEntries(cfg.BlockLists)
		if err != nil {
			return nil, err
		}
		p("  // block lists, checked before any rule")
		p("  if (ip ? inCIDRs(ip, %s) : underName(h, %s)) return REFUSED;", jsCIDRs(prefixes, fake), jsSet(names))
	}
	for i, r := range rules {
		if len(r.Listeners) > 0 && !slices.Contains(r.Listeners, listener) {
			continue // another listener's rule
		}
		direct := r.Action.Direct && len(r.Users) == 0
		answer, what := "PROXIES", r.Action.String()
		switch {
		case direct:
			answer, what = "DIRECT_", "direct: leaves WITHOUT the chain"
		case r.Action.Block:
			answer = "REFUSED"
		case r.Action.Direct:
			what = "direct for some users: the proxy decides per user"
		}
		label := fmt.Sprintf("rule %d", i+1)
		if r.Name != "" {
			label += " " + jsString(r.Name)
		}
		p("  // %s: %s", label, jsComment(what))
		p("  if (%s) return %s;", ruleCondition(r, direct, fake), answer)
	}
	p("  return PROXIES;")
	p("}")
	return []byte(b.String()), nil
}

// ruleCondition is r's match as a JS expression. exact is false for a
// rule that leads to the proxies (it may match more), true for a direct
// rule (it may match less).
func ruleCondition(r policy.Rule, direct bool, fake []netip.Prefix) string {
	var conds []string
	if len(r.Ports) > 0 {
		var ranges []string
		for _, pr := range r.Ports {
			ranges = append(ranges, fmt.Sprintf("[%d,%d]", pr.Lo, pr.Hi))
		}
		conds = append(conds, fmt.Sprintf("portIn(port, [%s], %t)", strings.Join(ranges, ","), !direct))
	}
	if len(r.Domains)+len(r.Suffixes)+len(r.Globs)+len(r.CIDRs) > 0 {
		var globs []string
		for _, g := range r.Globs {
			re, ok := globRegexp(g)
			switch {
			case ok:
				globs = append(globs, "new RegExp("+jsString(re)+")")
			case !direct:
				globs = append(globs, "/^/") // not translated: taken to match
			}
		}
		conds = append(conds, fmt.Sprintf("(ip ? inCIDRs(ip, %s) : nameIn(h, %s, %s, [%s]))",
			jsCIDRs(r.CIDRs, fake), jsSet(r.Domains), jsList(r.Suffixes), strings.Join(globs, ", ")))
	}
	if len(conds) == 0 {
		return "true"
	}
	return strings.Join(conds, " && ")
}

// globRegexp turns a path.Match pattern on a name into a JS regexp, or
// reports that it cannot ([classes] are not translated).
func globRegexp(g string) (string, bool) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); i++ {
		switch c := g[i]; c {
		case '*':
			b.WriteString("[^/]*")
		case '?':
			b.WriteString("[^/]")
		case '[':
			return "", false
		case '\\':
			if i++; i == len(g) {
				return "", false
			}
			b.WriteString(regexp.QuoteMeta(g[i : i+1]))
		default:
			b.WriteString(regexp.QuoteMeta(g[i : i+1]))
		}
	}
	b.WriteString("$")
	return b.String(), true
}

// withoutFake is ps with the fake-ip ranges taken out.
func withoutFake(ps []netip.Prefix, fake []netip.Prefix) []netip.Prefix {
	for _, f := range fake {
		if !f.IsValid() {
			continue
		}
		var out []netip.Prefix
		for _, p := range ps {
			out = append(out, subtractPrefix(p, f)...)
		}
		ps = out
	}
	return ps
}

// subtractPrefix is p without the addresses of f, as prefixes.
func subtractPrefix(p, f netip.Prefix) []netip.Prefix {
	switch {
	case p.Addr().Is4() != f.Addr().Is4() || !p.Overlaps(f):
		return []netip.Prefix{p}
	case f.Bits() <= p.Bits(): // f holds all of p
		return nil
	}
	// f is inside p: split p in halves and keep going into f's half.
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	hiAddr := p.Addr().As16()
	bit := p.Bits()
	if p.Addr().Is4() {
		bit += 96
	}
	hiAddr[bit/8] |= 0x80 >> (bit % 8)
	hi := netip.AddrFrom16(hiAddr)
	if p.Addr().Is4() {
		hi = hi.Unmap()
	}
	hiP := netip.PrefixFrom(hi, p.Bits()+1)
	return append(subtractPrefix(lo, f), subtractPrefix(hiP, f)...)
}

func jsCIDRs(ps []netip.Prefix, fake []netip.Prefix) string {
	var parts []string
	for _, p := range withoutFake(ps, fake) {
		var bytes []string
		if p.Addr().Is4() {
			for _, x := range p.Addr().As4() {
				bytes = append(bytes, fmt.Sprint(x))
			}
		} else {
			for _, x := range p.Addr().As16() {
				bytes = append(bytes, fmt.Sprint(x))
			}
		}
		parts = append(parts, fmt.Sprintf("[[%s],%d]", strings.Join(bytes, ","), p.Bits()))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// jsSet is a JS object with names as keys, for lookups.
func jsSet(names []string) string {
	var parts []string
	for _, n := range names {
		parts = append(parts, jsString(n)+":1")
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func jsList(ss []string) string {
	var parts []string
	for _, s := range ss {
		parts = append(parts, jsString(s))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// jsString is s as a JS string literal (JSON escapes every line
// terminator JS knows, U+2028 and U+2029 included).
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// jsComment makes s safe in a // comment.
func jsComment(s string) string {
	q := jsString(s)
	return q[1 : len(q)-1]
}

// blockListEntries reads the block lists' names and ranges again, for
// the file (policy keeps them to itself), as policy reads them: one name,
// address or CIDR a line, or a hosts-file line; '#' starts a comment.
func blockListEntries(paths []string) (names []string, prefixes []netip.Prefix, err error) {
	if _, err := policy.LoadBlockLists(paths...); err != nil {
		return nil, nil, err // with the file and line
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, err
		}
		for _, line := range strings.Split(string(data), "\n") {
			line, _, _ = strings.Cut(line, "#")
			fields := strings.Fields(line)
			if len(fields) > 1 {
				fields = fields[1:] // a hosts-file line (policy refuses any other with more than one field)
			}
			for _, e := range fields {
				if p, err := netip.ParsePrefix(e); err == nil {
					prefixes = append(prefixes, p.Masked())
				} else if ip, err := netip.ParseAddr(e); err == nil {
					prefixes = append(prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
				} else if n, err := policy.CanonicalName(e); err == nil {
					names = append(names, n)
				}
			}
		}
	}
	return names, prefixes, nil
}

// pacHelpers are the functions the file's rules call: plain JS, no PAC
// built-in (none of which may resolve a name then).
const pacHelpers = `function parseIP4(s) {
  var m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  var b = [];
  for (var i = 1; i <= 4; i++) {
    if (m[i].length > 1 && m[i].charAt(0) == "0") return null;
    var v = parseInt(m[i], 10);
    if (v > 255) return null;
    b.push(v);
  }
  return b;
}
function parseIP6(s) {
  if (s.indexOf(":") < 0) return null;
  if (s.indexOf("%") >= 0) return []; // with a zone: an address no range holds, as in policy
  var m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (m) {
    var v4 = parseIP4(m[2]);
    if (!v4) return null;
    s = m[1] + ((v4[0] << 8) | v4[1]).toString(16) + ":" + ((v4[2] << 8) | v4[3]).toString(16);
  }
  var halves = s.split("::");
  if (halves.length > 2) return null;
  var head = halves[0] ? halves[0].split(":") : [];
  var tail = halves.length == 2 && halves[1] ? halves[1].split(":") : [];
  var groups = head;
  if (halves.length == 2) {
    if (head.length + tail.length > 7) return null;
    while (groups.length + tail.length < 8) groups.push("0");
    groups = groups.concat(tail);
  }
  if (groups.length != 8) return null;
  var b = [];
  for (var i = 0; i < 8; i++) {
    if (!/^[0-9a-f]{1,4}$/.test(groups[i])) return null;
    var v = parseInt(groups[i], 16);
    b.push(v >> 8, v & 255);
  }
  var mapped = b[10] == 255 && b[11] == 255;
  for (var j = 0; j < 10; j++) if (b[j] != 0) mapped = false;
  return mapped ? b.slice(12) : b;
}
function parseIP(h) { return parseIP4(h) || parseIP6(h); }
function inCIDRs(ip, list) {
  for (var i = 0; i < list.length; i++) {
    var net = list[i][0], bits = list[i][1], ok = net.length == ip.length;
    for (var j = 0; ok && bits > 0; j++, bits -= 8) {
      var mask = bits >= 8 ? 255 : (0xff << (8 - bits)) & 0xff;
      ok = (ip[j] & mask) == (net[j] & mask);
    }
    if (ok) return true;
  }
  return false;
}
function nameIn(h, domains, suffixes, globs) {
  if (Object.prototype.hasOwnProperty.call(domains, h)) return true;
  for (var i = 0; i < suffixes.length; i++) {
    var s = suffixes[i];
    if (h == s.slice(1) || (h.length > s.length && h.slice(h.length - s.length) == s)) return true;
  }
  for (var k = 0; k < globs.length; k++) if (globs[k].test(h)) return true;
  return false;
}
function underName(h, set) {
  for (;;) {
    if (Object.prototype.hasOwnProperty.call(set, h)) return true;
    var dot = h.indexOf(".");
    if (dot < 0) return false;
    h = h.slice(dot + 1);
  }
}
function portOf(url) {
  var m = /^([a-z][a-z0-9+.-]*):\/\/(?:[^@\/?#]*@)?(\[[^\]]*\]|[^:\/?#]*)(?::(\d+))?/i.exec(url);
  if (!m) return 0;
  if (m[3]) return parseInt(m[3], 10);
  var d = {http: 80, https: 443, ws: 80, wss: 443, ftp: 21}[m[1].toLowerCase()];
  return d || 0;
}
function portIn(port, ranges, unknownMatches) {
  if (!port) return unknownMatches;
  for (var i = 0; i < ranges.length; i++) if (port >= ranges[i][0] && port <= ranges[i][1]) return true;
  return false;
}
`
