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
func ParseHop(raw string) (Hop, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("hop URL: %w (want scheme://[user:pass@]host:port)", redactURLError(err))
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("hop URL %q: want scheme://[user:pass@]host:port", u.Redacted())
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("hop URL %q: unexpected path, query or fragment", u.Redacted())
	}
	addr, err := hostPort(u, "1080")
	if err != nil {
		return nil, fmt.Errorf("hop URL %q: %w", u.Redacted(), err)
	}
	switch strings.ToLower(u.Scheme) {
	case "socks5", "socks5h":
		h := &SOCKS5{Address: addr}
		if u.User != nil {
			h.User = u.User.Username()
			h.Password, _ = u.User.Password()
			if len(h.User) == 0 || len(h.User) > 255 || len(h.Password) > 255 {
				return nil, fmt.Errorf("hop URL %q: user name must be 1-255 bytes and password at most 255", u.Redacted())
			}
		}
		return h, nil
	default:
		return nil, fmt.Errorf("hop URL %q: unsupported scheme %q (supported: socks5, socks5h)", u.Redacted(), u.Scheme)
	}
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
