package chain

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Hop is one upstream proxy.
type Hop interface {
	// Connect asks the proxy at the far end of conn to connect onward to
	// addr, and returns the stream that now reaches addr.
	Connect(ctx context.Context, conn net.Conn, addr string) (net.Conn, error)
	// Addr is the hop's own host:port.
	Addr() string
}

// ParseHop builds a Hop from a URL:
//
//	socks5://[user:pass@]host[:port]     SOCKS5 (socks5h is the same: names always go to the hop)
//	socks5s://[user:pass@]host[:port]    SOCKS5 inside TLS 1.3 to the hop: a layered link (our serve)
//	socks4a://[userid@]…, socks4://…     SOCKS4a; SOCKS4 carries IPv4 destinations only
//	http://[user:pass@]…                 CONNECT
//	https://[user:pass@]…                CONNECT over TLS
//	ssh://user[:pass]@host[:port]        an SSH server: a direct-tcpip channel per stream
//
// Every scheme takes ?timeout=5s, this hop's handshake timeout; socks5
// and http take ?pipeline=1 (see SOCKS5.Pipeline); socks5s and https take
// pin=sha256:… (verify the hop's key and nothing else), or ca=FILE (verify
// by CA; the system roots without it), sni=NAME and insecure=1. Every
// scheme with a password takes it from password-env=NAME or
// password-file=FILE (its first line) instead of the URL. socks5 (all
// three forms) and ssh take isolate= (see Isolation). ssh takes
// hostkey=SHA256:… (the server's key fingerprint) or known_hosts=FILE
// (default ~/.ssh/known_hosts), and identity=FILE; the ssh-agent at
// SSH_AUTH_SOCK is used too.
// Schemes form a closed set here on purpose: no registry, no fallbacks.
//
// The user part is split off by hand, at the last '@', before url.Parse
// sees the rest: a password holding an unescaped '/', '?' or '#' would
// otherwise end up in the host or path, and from there in error messages.
// No error from here contains the password.
func ParseHop(raw string) (Hop, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || scheme == "" {
		return nil, fmt.Errorf("hop URL %q: want scheme://[user:pass@]host:port", redact(raw))
	}
	// The user part ends at the last '@' before the query: a password may
	// hold an unescaped '/', but '?', '#' and '@' must be %-escaped.
	var user, pass string
	var hasUser bool
	authority, query, hasQuery := strings.Cut(rest, "?")
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		hasUser = true
		u, p, _ := strings.Cut(authority[:at], ":")
		var err1, err2 error
		user, err1 = url.PathUnescape(u)
		pass, err2 = url.PathUnescape(p)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("hop URL %q: bad %%-escape in user or password", redact(raw))
		}
		rest = authority[at+1:]
		if hasQuery {
			rest += "?" + query
		}
	}
	shown := redact(raw) // when no user part was found, a stray '@' may still hide one
	if hasUser {
		shown = scheme + "://" + url.PathEscape(user) + ":xxxxx@" + rest
	}
	u, err := url.Parse(scheme + "://" + rest)
	if err != nil && !hasUser && strings.Contains(raw, "@") {
		// Likely a password with an unescaped '?' or '#': the parser's own
		// message would quote part of it.
		return nil, fmt.Errorf("hop URL %q: cannot parse it; percent-encode '?', '#' and '@' in user and password", shown)
	}
	if err != nil {
		return nil, fmt.Errorf("hop URL %q: %w (want scheme://[user:pass@]host:port)", shown, redactURLError(err))
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("hop URL %q: want scheme://[user:pass@]host:port", shown)
	}
	if u.Path != "" && u.Path != "/" || u.Fragment != "" {
		return nil, fmt.Errorf("hop URL %q: unexpected path or fragment", shown)
	}
	if hasUser && (len(user) == 0 || len(user) > 255 || len(pass) > 255) {
		return nil, fmt.Errorf("hop URL %q: user name must be 1-255 bytes and password at most 255", shown)
	}
	opts, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("hop URL %q: bad query: %w", shown, err)
	}
	scheme = strings.ToLower(u.Scheme)
	defPort := map[string]string{"socks5": "1080", "socks5h": "1080", "socks5s": "443", "socks4": "1080", "socks4a": "1080", "http": "8080", "https": "443", "ssh": "22"}[scheme]
	if defPort == "" {
		return nil, fmt.Errorf("hop URL %q: unsupported scheme %q (supported: socks5s, socks5, socks5h, socks4, socks4a, http, https, ssh)", shown, u.Scheme)
	}
	addr, err := hostPort(u, defPort)
	if err != nil {
		return nil, fmt.Errorf("hop URL %q: %w", shown, err)
	}
	layered := scheme == "socks5s" || scheme == "https"
	for key := range opts {
		switch {
		case key == "timeout":
		case (scheme == "socks5" || scheme == "socks5h" || scheme == "http") && key == "pipeline":
		case layered && (key == "pin" || key == "ca" || key == "insecure" || key == "sni"):
		case !strings.HasPrefix(scheme, "socks4") && (key == "password-env" || key == "password-file"):
		case (strings.HasPrefix(scheme, "socks5") || scheme == "ssh") && key == "isolate":
		case scheme == "ssh" && (key == "hostkey" || key == "known_hosts" || key == "identity"):
		default:
			return nil, fmt.Errorf("hop URL %q: unknown option %q (options: timeout; for socks5 and http also pipeline; for socks5s and https also pin, ca, sni, insecure; "+
				"for socks5 also isolate; for ssh isolate, hostkey, known_hosts, identity; for all but socks4 password-env, password-file)", shown, key)
		}
	}
	// A password on the command line is visible to every user of the
	// machine (ps): it can come from the environment or a file instead.
	if env, file := opts.Get("password-env"), opts.Get("password-file"); env != "" || file != "" {
		if pass != "" || env != "" && file != "" {
			return nil, fmt.Errorf("hop URL %q: give the password one way: in the URL, password-env= or password-file=", shown)
		}
		if !hasUser || user == "" {
			return nil, fmt.Errorf("hop URL %q: password-env= and password-file= need a user in the URL (user@host)", shown)
		}
		if env != "" {
			if pass = os.Getenv(env); pass == "" {
				return nil, fmt.Errorf("hop URL %q: password-env=%s: that variable is not set", shown, env)
			}
		} else {
			b, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("hop URL %q: password-file: %w", shown, err)
			}
			pass, _, _ = strings.Cut(string(b), "\n")
			pass = strings.TrimRight(pass, "\r")
		}
		if len(pass) > 255 {
			return nil, fmt.Errorf("hop URL %q: the password must be at most 255 bytes", shown)
		}
	}
	var pipeline bool
	switch opts.Get("pipeline") {
	case "", "0":
	case "1":
		pipeline = true
	default:
		return nil, fmt.Errorf("hop URL %q: pipeline=%q: want 1 or 0", shown, opts.Get("pipeline"))
	}
	var timeout time.Duration
	if t := opts.Get("timeout"); t != "" {
		timeout, err = time.ParseDuration(t)
		if err != nil || timeout <= 0 {
			return nil, fmt.Errorf("hop URL %q: timeout=%q is not a positive duration such as 5s", shown, t)
		}
	}
	isolate, err := ParseIsolation(opts.Get("isolate"))
	if err != nil {
		return nil, fmt.Errorf("hop URL %q: %w", shown, err)
	}
	if scheme == "ssh" {
		h, err := sshHop(addr, user, pass, opts)
		if err != nil {
			return nil, fmt.Errorf("hop URL %q: %w", shown, err)
		}
		h.Isolate, h.Timeout = isolate, timeout
		return h, nil
	}
	if isolate != IsolateNone && hasUser {
		return nil, fmt.Errorf("hop URL %q: isolate= sends credentials of its own per isolation key: leave out the user and password", shown)
	}
	var cfg *tls.Config
	var pin string
	if layered {
		if cfg, pin, err = tlsConfig(scheme, u.Hostname(), opts); err != nil {
			return nil, fmt.Errorf("hop URL %q: %w", shown, err)
		}
	}
	switch scheme {
	case "socks5", "socks5h", "socks5s":
		h := &SOCKS5{Address: addr, User: user, Password: pass, Pipeline: pipeline, TLS: cfg, Pin: pin, Timeout: timeout, Isolate: isolate}
		if isolate != IsolateNone {
			h.salt = make([]byte, 32)
			rand.Read(h.salt)
		}
		return h, nil
	case "socks4", "socks4a":
		if pass != "" {
			return nil, fmt.Errorf("hop URL %q: SOCKS4 has a user ID but no password", shown)
		}
		return &SOCKS4{Address: addr, UserID: user, A: scheme == "socks4a", Timeout: timeout}, nil
	}
	return &HTTPConnect{Address: addr, User: user, Password: pass, Pipeline: pipeline, TLS: cfg, Pin: pin, Timeout: timeout}, nil
}

// tlsConfig is the TLS to a socks5s:// or https:// hop. With pin= it
// verifies the hop's key and nothing else, and sends no SNI unless sni=
// asks for one. Otherwise it verifies the certificate against the system
// roots (or the ca= file) for the hop's name (or sni=); insecure=1 turns
// verification off, for test setups only. socks5s is TLS 1.3 with a
// browser's ALPN offer; an https hop without a pin may be any HTTPS proxy,
// so it keeps a plain TLS 1.2+ hello.
func tlsConfig(scheme, host string, opts url.Values) (*tls.Config, string, error) {
	sni := opts.Get("sni")
	insecure := false
	switch opts.Get("insecure") {
	case "", "0", "false":
	case "1", "true":
		insecure = true
	default:
		return nil, "", fmt.Errorf("insecure=%q: want 1 or 0", opts.Get("insecure"))
	}
	if p := opts.Get("pin"); p != "" {
		pin, err := ParsePin(p)
		if err != nil {
			return nil, "", err
		}
		if opts.Get("ca") != "" || insecure {
			return nil, "", fmt.Errorf("pin= verifies the hop by itself: leave out ca= and insecure=")
		}
		return pinnedConfig(pin, sni), pin, nil
	}
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if scheme == "socks5s" {
		cfg.MinVersion, cfg.NextProtos = tls.VersionTLS13, layerALPN
	}
	if sni != "" {
		cfg.ServerName = sni
	}
	if ca := opts.Get("ca"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, "", fmt.Errorf("ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("ca: no PEM certificate in %s", ca)
		}
	}
	cfg.InsecureSkipVerify = insecure
	return cfg, "", nil
}

// sshHop is an ssh:// hop from its parts: the host key check, and at
// least one way to authenticate.
func sshHop(addr, user, pass string, opts url.Values) (*SSH, error) {
	if user == "" {
		return nil, fmt.Errorf("an SSH hop needs a user: ssh://USER@host")
	}
	h := &SSH{Address: addr, User: user, Password: pass, AgentSocket: os.Getenv("SSH_AUTH_SOCK")}
	switch hk, kh := opts.Get("hostkey"), opts.Get("known_hosts"); {
	case hk != "" && kh != "":
		return nil, fmt.Errorf("hostkey= verifies the server by itself: leave out known_hosts=")
	case hk != "":
		var err error
		if h.HostKey, err = ParseHostKey(hk); err != nil {
			return nil, err
		}
	default:
		h.KnownHosts = cmp.Or(kh, DefaultKnownHosts())
		if _, err := knownhosts.New(expandHome(h.KnownHosts)); err != nil {
			return nil, fmt.Errorf("known_hosts: %w; pin the server's key with hostkey=SHA256:... instead (`ssh-keyscan HOST | ssh-keygen -lf -` shows it; check it on the server)", err)
		}
	}
	if id := opts.Get("identity"); id != "" {
		s, err := LoadIdentity(id)
		if err != nil {
			return nil, err
		}
		h.Signers = []ssh.Signer{s}
	}
	if len(h.Signers) == 0 && h.AgentSocket == "" && h.Password == "" {
		return nil, fmt.Errorf("no way to log in to the SSH server: give identity=FILE, run an ssh-agent (SSH_AUTH_SOCK), or a password")
	}
	return h, nil
}

// redact hides everything before the last '@' after the scheme.
func redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if at := strings.LastIndex(rest, "@"); ok && at >= 0 {
		return scheme + "://xxxxx@" + rest[at+1:]
	}
	if at := strings.LastIndex(raw, "@"); at >= 0 {
		return "xxxxx@" + raw[at+1:]
	}
	return raw
}

// hostPort returns u's host:port, with defPort when the URL has none.
func hostPort(u *url.URL, defPort string) (string, error) {
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return "", fmt.Errorf("missing host")
	}
	if port == "" {
		port = defPort
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("bad port %q", port)
	}
	return net.JoinHostPort(host, port), nil
}

// redactURLError drops the URL text from a url.Error: it may hold a password.
func redactURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
