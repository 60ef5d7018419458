package main

import (
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "turn another tool's config into a veilchain config",
		ArgsUsage: "proxychains [FILE]",
		Subcommands: []*cli.Command{{
			Name:      "proxychains",
			Usage:     "print the veilchain YAML equivalent of a proxychains(-ng) config",
			ArgsUsage: "[FILE]",
			Description: "Without FILE, reads the first of $PROXYCHAINS_CONF_FILE, ./proxychains.conf,\n" +
				"$HOME/.proxychains/proxychains.conf, /etc/proxychains4.conf, /etc/proxychains.conf that exists.\n" +
				"The YAML goes to standard output, with the proxies' passwords as the file had them; what\n" +
				"could not be carried over is reported on standard error with its line number.\n" +
				"Example: veilchain import proxychains > veilchain.yaml && veilchain run -c veilchain.yaml",
			Action: importProxychainsAction,
		}},
	}
}

func importProxychainsAction(c *cli.Context) error {
	if c.NArg() > 1 {
		return fmt.Errorf("import proxychains takes at most one FILE, got %d arguments", c.NArg())
	}
	path := c.Args().First()
	if path == "" {
		var err error
		if path, err = findProxychainsConf(); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("import proxychains: %w", err)
	}
	out, warnings, err := importProxychains(path, data)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintln(c.App.ErrWriter, "veilchain: warning:", w)
	}
	_, err = c.App.Writer.Write(out)
	return err
}

// proxychainsPaths are where proxychains-ng looks for its config, in its order.
func proxychainsPaths() []string {
	var paths []string
	if p := os.Getenv("PROXYCHAINS_CONF_FILE"); p != "" {
		paths = append(paths, p)
	}
	paths = append(paths, "proxychains.conf")
	if home, err := os.UserHomeDir(); err == nil {
		paths = append(paths, filepath.Join(home, ".proxychains", "proxychains.conf"))
	}
	return append(paths, "/etc/proxychains4.conf", "/etc/proxychains.conf")
}

func findProxychainsConf() (string, error) {
	paths := proxychainsPaths()
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("import proxychains: no config found (looked for %s); name one: veilchain import proxychains FILE",
		strings.Join(paths, ", "))
}

// pcHop is one [ProxyList] line.
type pcHop struct {
	line int
	url  string // password included, as the file had it
	what string // for the comment: type host port, never the credentials
}

// pcLocalnet is one localnet line.
type pcLocalnet struct {
	line   int
	prefix netip.Prefix
	port   uint16 // 0: any
}

// importProxychains reads a proxychains(-ng) config and returns the
// equivalent veilchain YAML, warnings (file:line: what was not carried
// over), or the errors that stop it (file:line each).
func importProxychains(name string, data []byte) ([]byte, []string, error) {
	var (
		errs, warns         []string
		mode, modeDirective string
		modeLine, chainLen  int
		chainLenLine        int
		proxyDNS            string
		fakeNet             string
		connectTO, readTO   time.Duration
		connectLn, readLn   int
		hops                []pcHop
		localnets           []pcLocalnet
		inList              bool
	)
	fail := func(n int, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("%s:%d: %s", name, n, fmt.Sprintf(format, args...)))
	}
	warn := func(n int, format string, args ...any) {
		warns = append(warns, fmt.Sprintf("%s:%d: %s", name, n, fmt.Sprintf(format, args...)))
	}
	lines := strings.Split(string(data), "\n")
	for i, raw := range lines {
		n := i + 1
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if line == "" || line[0] == '#' {
			continue
		}
		if strings.HasPrefix(line, "[") {
			if strings.EqualFold(line, "[ProxyList]") {
				inList = true
				continue
			}
			fail(n, "unknown section %s: want [ProxyList]", strconv.Quote(cut(line, 40)))
			continue
		}
		fields := strings.Fields(line)
		if inList {
			h, err := parseProxyLine(fields)
			if err != nil {
				fail(n, "%v", err)
				continue
			}
			h.line = n
			hops = append(hops, h)
			continue
		}
		// A directive; what follows a '#' is a comment.
		if c := strings.Index(line, "#"); c >= 0 {
			fields = strings.Fields(line[:c])
		}
		key := fields[0]
		args := fields[1:]
		if k, v, ok := strings.Cut(key, "="); ok { // chain_len=2
			key, args = k, append([]string{v}, args...)
		}
		if len(args) > 0 && args[0] == "=" { // chain_len = 2
			args = args[1:]
		} else if len(args) > 0 && strings.HasPrefix(args[0], "=") {
			args[0] = strings.TrimPrefix(args[0], "=")
		}
		switch key {
		case "strict_chain", "dynamic_chain", "random_chain", "round_robin_chain":
			if mode != "" {
				warn(n, "%s after %s on line %d: the last one counts, as in proxychains", key, modeDirective, modeLine)
			}
			mode = map[string]string{"strict_chain": "strict", "dynamic_chain": "dynamic", "random_chain": "random", "round_robin_chain": "round-robin"}[key]
			modeDirective, modeLine = key, n
		case "chain_len":
			v, err := strconv.Atoi(strings.Join(args, ""))
			if err != nil || v < 1 {
				fail(n, "chain_len: want a number of proxies, 1 or more")
				continue
			}
			chainLen, chainLenLine = v, n
		case "proxy_dns", "proxy_dns_old", "proxy_dns_daemon":
			proxyDNS = key
		case "remote_dns_subnet":
			v, err := strconv.Atoi(strings.Join(args, ""))
			if err != nil || v < 0 || v > 255 {
				fail(n, "remote_dns_subnet: want the first byte of an IPv4 /8, 0-255")
				continue
			}
			fakeNet = fmt.Sprintf("%d.0.0.0/8", v)
		case "tcp_read_time_out", "tcp_connect_time_out":
			v, err := strconv.Atoi(strings.Join(args, ""))
			if err != nil || v <= 0 {
				fail(n, "%s: want a positive number of milliseconds", key)
				continue
			}
			if key == "tcp_read_time_out" {
				readTO, readLn = time.Duration(v)*time.Millisecond, n
			} else {
				connectTO, connectLn = time.Duration(v)*time.Millisecond, n
			}
		case "localnet":
			if len(args) != 1 {
				fail(n, "localnet: want ADDRESS[:PORT]/MASK, such as 192.168.0.0/255.255.0.0 or [::1]:80/128")
				continue
			}
			ln, err := parseLocalnet(args[0])
			if err != nil {
				fail(n, "localnet: %v", err)
				continue
			}
			ln.line = n
			localnets = append(localnets, ln)
		case "quiet_mode":
			// Output of the preloaded library: nothing to carry over.
		case "dnat":
			warn(n, "dnat is not supported by veilchain: not imported (connections go to the address the program asked for, through the chain)")
		default:
			warn(n, "unknown directive %s: not imported", strconv.Quote(cut(key, 40)))
		}
	}
	if len(hops) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Sprintf("%s: no proxies: a [ProxyList] section with lines such as \"socks5 192.0.2.1 1080\" is needed", name))
	}
	if chainLen > 0 && chainLen > len(hops) && len(hops) > 0 {
		fail(chainLenLine, "chain_len %d is more than the %d proxies listed", chainLen, len(hops))
	}
	if len(errs) > 0 {
		return nil, nil, errors.New(strings.Join(errs, "\n"))
	}
	if chainLen > 0 && mode != "random" && mode != "round-robin" {
		warn(chainLenLine, "chain_len applies to random_chain and round_robin_chain only: not imported")
		chainLen = 0
	}

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# veilchain config imported from the proxychains config %s by `veilchain import proxychains`.", yamlComment(name))
	p("# It holds the proxies' user names and passwords as that file had them: keep it private (chmod 600).")
	p("#")
	p("# Differences from proxychains:")
	p("# - Programs reach the chain through the front ends below (SOCKS5 127.0.0.1:1080, HTTP 127.0.0.1:8118),")
	p("#   with `veilchain exec -- PROGRAM` (add --force for programs that ignore proxy variables), or")
	p("#   `veilchain env`; nothing is preloaded into programs.")
	if proxyDNS != "" {
		p("# - %s: veilchain always sends destination names down the chain as names, to be resolved", proxyDNS)
		p("#   by the exit; nothing here looks them up, so there is nothing to turn on.")
	} else {
		p("# - The file has no proxy_dns, so proxychains resolved names on this machine. veilchain never does:")
		p("#   destination names always go down the chain as names, to be resolved by the exit.")
	}
	p("")
	p("listeners:")
	p("  - name: default")
	p("    socks: 127.0.0.1:1080")
	p("    http: 127.0.0.1:8118")
	p("    chain: proxychains")
	if connectTO > 0 || readTO > 0 {
		p("")
		p("timeouts:")
		if connectTO > 0 {
			p("  connect: %s     # tcp_connect_time_out (line %d): TCP connect to the first hop", connectTO, connectLn)
		}
		if readTO > 0 {
			p("  handshake: %s   # tcp_read_time_out (line %d): each hop's handshake (and each client's request)", readTO, readLn)
		}
	}
	if fakeNet != "" {
		p("")
		p("# remote_dns_subnet: the range of the fake addresses veilchain's DNS front end hands out (used only")
		p("# when a listener has one, e.g. dns: 127.0.0.1:5353; a connection to one reaches the chain as the name).")
		p("dns:")
		p("  mode: fake-ip")
		p("  fake_ipv4: %s", fakeNet)
	}
	p("")
	p("chains:")
	p("  proxychains:")
	switch {
	case mode == "":
		p("    mode: strict   # the file names no chain type: strict, veilchain's default (every hop, in order)")
	default:
		p("    mode: %s   # %s (line %d)", mode, modeDirective, modeLine)
	}
	switch {
	case chainLen > 0:
		p("    length: %d   # chain_len (line %d)", chainLen, chainLenLine)
	case mode == "random" || mode == "round-robin":
		p("    length: 1   # the file has no chain_len: proxychains' default, one proxy per connection")
	}
	p("    hops:")
	for _, h := range hops {
		p("      - %s   # line %d: %s", strconv.Quote(h.url), h.line, h.what)
	}
	if len(localnets) > 0 {
		p("")
		p("# localnet: these destinations leave this machine WITHOUT the chain, straight from here (run warns")
		p("# about it). As in proxychains, they match destinations given as addresses only, never names.")
		p("rules:")
		for _, l := range localnets {
			ports := ""
			if l.port != 0 {
				ports = fmt.Sprintf(", ports: [%d]", l.port)
			}
			p("  - {name: localnet-line-%d, cidrs: [%s]%s, direct: true}", l.line, strconv.Quote(l.prefix.String()), ports)
		}
	}
	return []byte(b.String()), warns, nil
}

// parseProxyLine reads "type host port [user pass]".
func parseProxyLine(f []string) (pcHop, error) {
	// A comment may follow the last field.
	for i, s := range f {
		if i >= 3 && strings.HasPrefix(s, "#") {
			f = f[:i]
			break
		}
	}
	if len(f) != 3 && len(f) != 4 && len(f) != 5 {
		return pcHop{}, fmt.Errorf("want: TYPE HOST PORT [USER PASSWORD], such as \"socks5 192.0.2.1 1080\" (got %d fields)", len(f))
	}
	typ, host, portStr := strings.ToLower(f[0]), f[1], f[2]
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return pcHop{}, fmt.Errorf("%s proxy: port %s is not 1-65535", typ, strconv.Quote(cut(portStr, 20)))
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.String()
	} else if !validHostName(host) {
		return pcHop{}, fmt.Errorf("%s proxy: host %s is neither an IP address nor a host name", typ, strconv.Quote(cut(host, 60)))
	}
	var user, pass string
	if len(f) >= 4 {
		user = f[3]
	}
	if len(f) == 5 {
		pass = f[4]
	}
	if len(user) > 255 || len(pass) > 255 {
		return pcHop{}, fmt.Errorf("%s proxy: user name and password must be at most 255 bytes each", typ)
	}
	addr := net.JoinHostPort(host, strconv.FormatUint(port, 10))
	what := typ + " " + addr
	cred := ""
	switch typ {
	case "socks5", "http":
		switch {
		case user != "" && pass != "":
			cred = escapeUserinfo(user) + ":" + escapeUserinfo(pass) + "@"
			what += " with user and password"
		case user != "":
			cred = escapeUserinfo(user) + ":@"
			what += " with a user"
		}
		return pcHop{url: typ + "://" + cred + addr, what: what}, nil
	case "socks4":
		// proxychains sends a name to a SOCKS4 proxy as SOCKS4a; so does
		// socks4a://. SOCKS4 has a user ID and no password.
		if pass != "" {
			return pcHop{}, fmt.Errorf("socks4 proxy: SOCKS4 has a user ID but no password; use socks5 for a password")
		}
		if user != "" {
			cred = escapeUserinfo(user) + "@"
			what += " with a user ID"
		}
		return pcHop{url: "socks4a://" + cred + addr, what: what + " (socks4a: names go to the proxy)"}, nil
	case "raw":
		return pcHop{}, errors.New("raw proxies (bytes forwarded to the proxy unchanged, no handshake) are not supported: veilchain needs a SOCKS or HTTP proxy at each hop")
	}
	return pcHop{}, fmt.Errorf("unknown proxy type %s: want socks5, socks4 or http", strconv.Quote(cut(f[0], 20)))
}

// parseLocalnet reads ADDRESS[:PORT]/MASK, MASK dotted (255.255.0.0) or a
// prefix length; IPv6 addresses with a port are in brackets.
func parseLocalnet(s string) (pcLocalnet, error) {
	addrPart, mask, ok := strings.Cut(s, "/")
	if !ok {
		return pcLocalnet{}, fmt.Errorf("%s: want ADDRESS[:PORT]/MASK", strconv.Quote(cut(s, 60)))
	}
	var l pcLocalnet
	host := addrPart
	if h, p, err := net.SplitHostPort(addrPart); err == nil {
		port, err := strconv.ParseUint(p, 10, 16)
		if err != nil || port == 0 {
			return pcLocalnet{}, fmt.Errorf("port %s is not 1-65535", strconv.Quote(cut(p, 20)))
		}
		host, l.port = h, uint16(port)
	}
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if err != nil {
		return pcLocalnet{}, fmt.Errorf("%s is not an IP address", strconv.Quote(cut(host, 60)))
	}
	ip = ip.Unmap()
	bitsN := -1
	if m, err := netip.ParseAddr(mask); err == nil && m.Is4() && ip.Is4() {
		v := m.As4()
		u := uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
		if ones := bits.LeadingZeros32(^u); u<<ones == 0 { // contiguous ones
			bitsN = ones
		}
	} else if n, err := strconv.Atoi(mask); err == nil && n >= 0 && n <= ip.BitLen() {
		bitsN = n
	}
	if bitsN < 0 {
		return pcLocalnet{}, fmt.Errorf("mask %s: want a netmask such as 255.255.0.0 or a prefix length", strconv.Quote(cut(mask, 40)))
	}
	l.prefix = netip.PrefixFrom(ip, bitsN).Masked()
	return l, nil
}

// escapeUserinfo percent-encodes all but unreserved characters, as
// chain.ParseHop reads them back.
func escapeUserinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// yamlComment makes s safe inside a one-line comment.
func yamlComment(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// cut shortens s for an error message.
func cut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
