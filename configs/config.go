// Package configs holds veilchain's configuration schema, the embedded
// default, and a loader whose errors name the file, the line and the field.
package configs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/veilchain/veilchain/chain"
)

//go:embed default.yaml
var defaultYAML []byte

// Config is the whole configuration.
type Config struct {
	Log       Log              `yaml:"log"`
	Timeouts  Timeouts         `yaml:"timeouts"`
	Listeners []Listener       `yaml:"listeners"`
	Chains    map[string]Chain `yaml:"chains"`
	HTTPProxy HTTPProxy        `yaml:"http_proxy"`
	// Users maps a front-end user name to a bcrypt hash of the password.
	Users map[string]string `yaml:"users"`
	// Rules are tried in order; the first that matches decides.
	Rules []Rule `yaml:"rules"`
	// BlockLists are files of names and ranges refused before any rule.
	BlockLists []string `yaml:"block_lists"`
	DNS        DNS      `yaml:"dns"`
	// Status, if set, is the loopback host:port of the status page and
	// the Prometheus metrics (/metrics). Off by default.
	Status string `yaml:"status"`
	// StatusEchoURL, if set, is an http(s) URL that answers with the
	// caller's address (as `check --echo-url`): the status server asks it
	// through each chain once a minute, to show the exit address.
	StatusEchoURL string `yaml:"status_echo_url"`

	file  string            // where it came from, for error messages
	root  *yaml.Node        // the parsed file, for line numbers
	flags map[string]string // field path -> the flag that set it (see SetByFlag)
}

// Log selects the log level and format.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Timeouts bound the steps of a connection.
type Timeouts struct {
	Connect       time.Duration `yaml:"connect"`
	Handshake     time.Duration `yaml:"handshake"`
	Idle          time.Duration `yaml:"idle"`
	TunnelIdle    time.Duration `yaml:"tunnel_idle"` // 0: tunnels never time out
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
}

// HTTPProxy is what the HTTP front end does to plain-HTTP requests.
type HTTPProxy struct {
	UserAgent      string   `yaml:"user_agent"`
	AcceptLanguage string   `yaml:"accept_language"`
	Referer        string   `yaml:"referer"`
	DropHeaders    []string `yaml:"drop_headers"`
	MaxHeaderBytes int      `yaml:"max_header_bytes"`
	MaxURIBytes    int      `yaml:"max_uri_bytes"`
}

// Listener is a set of local front ends and the chain their connections take.
type Listener struct {
	Name  string `yaml:"name"`
	Socks string `yaml:"socks"`
	HTTP  string `yaml:"http"`
	Mixed string `yaml:"mixed"` // SOCKS4/4a/5 and HTTP on one port
	DNS   string `yaml:"dns"`   // DNS front end, UDP and TCP
	Chain string `yaml:"chain"`
	Auth  bool   `yaml:"auth"` // require a user from users:
	// EarlyReply answers SOCKS CONNECTs and HTTP CONNECTs before the
	// chain's pipelined exit has confirmed (see socks.Server.EarlyReply).
	EarlyReply bool `yaml:"early_reply"`
}

// DNS configures the DNS front ends (listeners' dns: addresses).
type DNS struct {
	Mode          string `yaml:"mode"`           // fake-ip | forward
	Upstream      string `yaml:"upstream"`       // the far-side resolver, reached through the chain
	FakeIPv4      string `yaml:"fake_ipv4"`      // fake-ip ranges
	FakeIPv6      string `yaml:"fake_ipv6"`      //
	BlockedAnswer string `yaml:"blocked_answer"` // nxdomain | zero
}

// Rule routes or refuses the connections it matches. Within one field any
// value matches; all the fields given must match.
type Rule struct {
	Name      string   `yaml:"name"`
	Domains   []string `yaml:"domains"`  // exact names
	Suffixes  []string `yaml:"suffixes"` // ".example.com": the name and everything under it
	Globs     []string `yaml:"globs"`    // "*.example.*"
	CIDRs     []string `yaml:"cidrs"`    // literal IP destinations only
	Ports     []Scalar `yaml:"ports"`    // 443 or "8000-8999"
	Listeners []string `yaml:"listeners"`
	Users     []string `yaml:"users"`
	// Exactly one action.
	Chain  string `yaml:"chain"`
	Block  bool   `yaml:"block"`
	Direct bool   `yaml:"direct"`
}

// Scalar is a YAML scalar of any type, kept as its text (ports: 443 and
// "8000-8999" both read).
type Scalar string

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Scalar) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a single value", n.Line)
	}
	*s = Scalar(n.Value)
	return nil
}

// Chain is an ordered list of hops, or an explicit direct route.
type Chain struct {
	Hops   []Hop `yaml:"hops"`
	Direct bool  `yaml:"direct"`
	// Mode is strict (default), dynamic, random or round-robin.
	Mode string `yaml:"mode"`
	// Length is how many hops random and round-robin take (default all).
	Length int `yaml:"length"`
	// HealthCheck, if set, probes every hop this often.
	HealthCheck time.Duration `yaml:"health_check"`
	// ConnectTimeout and HandshakeTimeout override timeouts: for this chain.
	ConnectTimeout   time.Duration `yaml:"connect_timeout"`
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// Prebuild keeps this many circuits built ahead of time, each through
	// every hop to the exit and past its auth, for one connection each;
	// PrebuildIdle closes and replaces one left unused that long.
	Prebuild     int           `yaml:"prebuild"`
	PrebuildIdle time.Duration `yaml:"prebuild_idle"`
}

// maxPrebuild bounds a chain's prebuilt circuits: each is a connection
// held open at every hop.
const maxPrebuild = 64

// Hop is one position of a chain: a hop URL, or a pool of them
// ({pool: [URL, ...], select: failover|round-robin|random|least-latency}).
type Hop struct {
	URL    string
	Pool   []string
	Select string
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (h *Hop) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		h.URL = n.Value
		return nil
	}
	var p struct {
		Pool   []string `yaml:"pool"`
		Select string   `yaml:"select"`
	}
	if err := n.Decode(&p); err != nil {
		return err
	}
	if len(p.Pool) == 0 {
		return fmt.Errorf("line %d: a hop is a URL or {pool: [URL, ...], select: ...}", n.Line)
	}
	h.Pool, h.Select = p.Pool, p.Select
	return nil
}

// URLs are the hop URLs of this position.
func (h Hop) URLs() []string {
	if h.URL != "" {
		return []string{h.URL}
	}
	return h.Pool
}

// Default returns the embedded default configuration.
func Default() *Config {
	c, err := Parse("(embedded default)", defaultYAML)
	if err != nil {
		panic(err) // a broken embedded file is a build defect; a test guards it
	}
	return c
}

// Load reads a config file and lays it over the default.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse lays data over the embedded default (or over nothing, when data is
// the default itself), then checks the result. name labels errors.
func Parse(name string, data []byte) (*Config, error) {
	c := &Config{}
	if name != "(embedded default)" {
		c = Default()
	}
	c.file = name
	c.root = &yaml.Node{}
	if err := yaml.Unmarshal(data, c.root); err != nil {
		return nil, c.yamlError(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, c.yamlError(err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError rewrites yaml.v3's "line N: msg" as "file:N: msg".
func (c *Config) yamlError(err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	for i, m := range msgs {
		if g := yamlLine.FindStringSubmatch(m); g != nil {
			line, _ := strconv.Atoi(g[1])
			msgs[i] = fmt.Sprintf("%s:%s: %s", c.file, g[1], explainYAML(c.root, line, g[2]))
		} else {
			msgs[i] = c.file + ": " + m
		}
	}
	return errors.New(strings.Join(msgs, "\n"))
}

// Errorf makes an error naming the file, the line of the field at path
// (keys and sequence indexes, e.g. "chains", "main", "hops", 1) and the
// field; or, for a field a flag set (see SetByFlag), the flag.
func (c *Config) Errorf(path []any, format string, args ...any) error {
	where := c.Where(path...)
	if flag := c.flagOf(path); flag != "" {
		where = flag
	}
	return fmt.Errorf("%s: %s: %s", where, fieldName(path), fmt.Sprintf(format, args...))
}

// SetByFlag records that the field at path (and all under it) has its
// value from a command-line flag, so that errors about it name the flag
// instead of a file and line the value did not come from.
func (c *Config) SetByFlag(flag string, path ...any) {
	if c.flags == nil {
		c.flags = map[string]string{}
	}
	c.flags[fieldName(path)] = flag
}

// flagOf is the flag that set the field at path or a field above it.
func (c *Config) flagOf(path []any) string {
	for n := len(path); n > 0; n-- {
		if flag, ok := c.flags[fieldName(path[:n])]; ok {
			return flag
		}
	}
	return ""
}

// Where returns "file:line" of the field at path, or of its nearest
// parent present in the file, or just the file name.
func (c *Config) Where(path ...any) string {
	n := c.root
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, p := range path {
		n = child(n, p)
		if n == nil {
			break
		}
		line = n.Line
	}
	if line == 0 {
		return c.file
	}
	return c.file + ":" + strconv.Itoa(line)
}

func child(n *yaml.Node, p any) *yaml.Node {
	if n == nil {
		return nil
	}
	switch k := p.(type) {
	case string:
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					return n.Content[i+1]
				}
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && k < len(n.Content) {
			return n.Content[k]
		}
	}
	return nil
}

func fieldName(path []any) string {
	var b strings.Builder
	for i, p := range path {
		switch k := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", k)
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, k)
		}
	}
	return b.String()
}

// Validate checks what can be checked without building objects: levels,
// timeouts, addresses, chain references, and hop URLs, modes and pool
// selectors, with the chain package's own parsers (cmd/veilchain builds
// the hops with the same ones).
func (c *Config) Validate() error {
	var errs []error
	add := func(path []any, format string, args ...any) {
		errs = append(errs, c.Errorf(path, format, args...))
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		add([]any{"log", "level"}, "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		add([]any{"log", "format"}, "%q is not text or json", c.Log.Format)
	}
	for _, t := range []struct {
		key string
		d   time.Duration
	}{{"connect", c.Timeouts.Connect}, {"handshake", c.Timeouts.Handshake}, {"idle", c.Timeouts.Idle}, {"shutdown_grace", c.Timeouts.ShutdownGrace}} {
		if t.d <= 0 {
			add([]any{"timeouts", t.key}, "must be positive, got %v", t.d)
		}
	}
	if c.Timeouts.TunnelIdle < 0 {
		add([]any{"timeouts", "tunnel_idle"}, "must be 0 (never) or positive")
	}
	if c.Status != "" {
		if _, _, err := net.SplitHostPort(c.Status); err != nil {
			add([]any{"status"}, "%q is not host:port (127.0.0.1:9080, say): %v", c.Status, err)
		}
	}
	if c.StatusEchoURL != "" {
		if u, err := url.Parse(c.StatusEchoURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add([]any{"status_echo_url"}, "%q is not an http(s) URL", c.StatusEchoURL)
		} else if c.Status == "" {
			add([]any{"status_echo_url"}, "is asked by the status server: set status too")
		}
	}
	if len(c.Listeners) == 0 {
		add([]any{"listeners"}, "at least one listener is needed")
	}
	names := map[string]bool{}
	for i, l := range c.Listeners {
		at := func(f string) []any { return []any{"listeners", i, f} }
		if l.Name == "" {
			add(at("name"), "missing")
		} else if names[l.Name] {
			add(at("name"), "%q is used twice", l.Name)
		}
		names[l.Name] = true
		if l.Socks == "" && l.HTTP == "" && l.Mixed == "" {
			add(at("socks"), "missing: give socks, http or mixed addresses, such as 127.0.0.1:1080 and 127.0.0.1:8118")
		}
		for _, f := range [][2]string{{"socks", l.Socks}, {"http", l.HTTP}, {"mixed", l.Mixed}, {"dns", l.DNS}} {
			if _, _, err := net.SplitHostPort(f[1]); f[1] != "" && err != nil {
				add(at(f[0]), "%q is not host:port", f[1])
			}
		}
		if l.Chain == "" {
			add(at("chain"), "missing")
		}
		if l.Auth && len(c.Users) == 0 {
			add(at("auth"), "no users: add users: with bcrypt hashes (veilchain hash-password)")
		}
		// A listener may name a chain that does not exist yet: flags can
		// supply it (run --hop), and run refuses to start if none does.
	}
	if c.DNS.Mode != "fake-ip" && c.DNS.Mode != "forward" {
		add([]any{"dns", "mode"}, "%q is not fake-ip or forward", c.DNS.Mode)
	}
	if _, _, err := net.SplitHostPort(c.DNS.Upstream); err != nil {
		add([]any{"dns", "upstream"}, "%q is not host:port", c.DNS.Upstream)
	}
	for _, f := range [][2]string{{"fake_ipv4", c.DNS.FakeIPv4}, {"fake_ipv6", c.DNS.FakeIPv6}} {
		if _, err := netip.ParsePrefix(f[1]); f[1] != "" && err != nil {
			add([]any{"dns", f[0]}, "%q is not a CIDR", f[1])
		}
	}
	if c.DNS.BlockedAnswer != "nxdomain" && c.DNS.BlockedAnswer != "zero" {
		add([]any{"dns", "blocked_answer"}, "%q is not nxdomain or zero", c.DNS.BlockedAnswer)
	}
	switch c.HTTPProxy.Referer {
	case "origin", "drop", "keep":
	default:
		add([]any{"http_proxy", "referer"}, "%q is not origin, drop or keep", c.HTTPProxy.Referer)
	}
	if c.HTTPProxy.MaxHeaderBytes < 1024 {
		add([]any{"http_proxy", "max_header_bytes"}, "must be at least 1024")
	}
	if c.HTTPProxy.MaxURIBytes < 256 || c.HTTPProxy.MaxURIBytes > c.HTTPProxy.MaxHeaderBytes {
		add([]any{"http_proxy", "max_uri_bytes"}, "must be between 256 and max_header_bytes")
	}
	for i, r := range c.Rules {
		actions := 0
		for _, set := range []bool{r.Chain != "", r.Block, r.Direct} {
			if set {
				actions++
			}
		}
		if actions != 1 {
			add([]any{"rules", i}, "give exactly one of chain: NAME, block: true, direct: true")
		} else if _, ok := c.Chains[r.Chain]; r.Chain != "" && !ok {
			add([]any{"rules", i, "chain"}, "no chain named %q", r.Chain)
		}
		for j, cidr := range r.CIDRs {
			if _, err := netip.ParsePrefix(cidr); err != nil {
				add([]any{"rules", i, "cidrs", j}, "%q is not a CIDR such as 10.0.0.0/8", cidr)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Chains)) {
		ch := c.Chains[name]
		if ch.Direct && len(ch.Hops) > 0 {
			add([]any{"chains", name, "direct"}, "a chain is either direct or has hops, not both")
		}
		if !ch.Direct && len(ch.Hops) == 0 {
			add([]any{"chains", name, "hops"}, "no hops: list hop URLs, or write \"direct: true\" to connect without a chain")
		}
		// The chain builder's own parsers: one set of rules for what a hop
		// URL, a mode and a pool selector are.
		for i, h := range ch.Hops {
			if h.URL != "" {
				if _, err := chain.ParseHop(h.URL); err != nil {
					add([]any{"chains", name, "hops", i}, "%v", err)
				}
				continue
			}
			for k, raw := range h.Pool {
				if _, err := chain.ParseHop(raw); err != nil {
					add([]any{"chains", name, "hops", i, "pool", k}, "%v", err)
				}
			}
			if _, err := chain.ParseSelector(h.Select); err != nil {
				add([]any{"chains", name, "hops", i, "select"}, "%v", err)
			}
		}
		if _, err := chain.ParseMode(ch.Mode); err != nil {
			add([]any{"chains", name, "mode"}, "%v", err)
		}
		if ch.Length < 0 || ch.Length > len(ch.Hops) {
			add([]any{"chains", name, "length"}, "must be between 1 and the number of hops")
		}
		if ch.Prebuild < 0 || ch.Prebuild > maxPrebuild {
			add([]any{"chains", name, "prebuild"}, "must be between 0 (off) and %d", maxPrebuild)
		}
		if ch.PrebuildIdle < 0 || ch.PrebuildIdle > 0 && ch.PrebuildIdle < time.Second {
			add([]any{"chains", name, "prebuild_idle"}, "must be at least 1s (0: the default, %v)", chain.DefaultPrebuildIdle)
		}
	}
	return errors.Join(errs...)
}
