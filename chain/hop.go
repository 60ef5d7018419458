package chain

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Hop is one upstream proxy.
type Hop interface {
	// Connect asks the proxy at the far end of conn to connect onward to
	// addr, and returns the stream that now reaches addr.
	Connect(ctx context.Context, conn net.Conn, addr string) (net.Conn, error)
	// Addr is the hop's own host:port.
	Addr() string
}

// ParseHop builds a Hop from a URL such as socks5://user:pass@host:1080.
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
	var user, pass string
	var hasUser bool
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		hasUser = true
		userinfo := rest[:at]
		rest = rest[at+1:]
		u, p, _ := strings.Cut(userinfo, ":")
		var err1, err2 error
		user, err1 = url.PathUnescape(u)
		pass, err2 = url.PathUnescape(p)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("hop URL %q: bad %%-escape in user or password", redact(raw))
		}
	}
	shown := scheme + "://" + rest
	if hasUser {
		shown = scheme + "://" + url.PathEscape(user) + ":xxxxx@" + rest
	}
	u, err := url.Parse(scheme + "://" + rest)
	if err != nil {
		return nil, fmt.Errorf("hop URL %q: %w (want scheme://[user:pass@]host:port)", shown, redactURLError(err))
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("hop URL %q: want scheme://[user:pass@]host:port", shown)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("hop URL %q: unexpected path, query or fragment", shown)
	}
	addr, err := hostPort(u, "1080")
	if err != nil {
		return nil, fmt.Errorf("hop URL %q: %w", shown, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "socks5", "socks5h":
		h := &SOCKS5{Address: addr}
		if hasUser {
			if len(user) == 0 || len(user) > 255 || len(pass) > 255 {
				return nil, fmt.Errorf("hop URL %q: user name must be 1-255 bytes and password at most 255", shown)
			}
			h.User, h.Password = user, pass
		}
		return h, nil
	default:
		return nil, fmt.Errorf("hop URL %q: unsupported scheme %q (supported: socks5, socks5h)", shown, u.Scheme)
	}
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
