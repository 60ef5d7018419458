package httpproxy

import (
	"net/http"
	"net/url"
	"strings"
)

// HeaderPolicy says how request headers are rewritten before a request
// leaves for its destination. The zero value removes hop-by-hop and
// identifying headers, trims cross-origin Referers to their origin, and
// leaves everything else as the client sent it.
type HeaderPolicy struct {
	// UserAgent, if set, replaces the client's User-Agent.
	UserAgent string
	// AcceptLanguage, if set, replaces the client's Accept-Language.
	AcceptLanguage string
	// Referer applies to cross-origin requests: "origin" (the default)
	// keeps only scheme://host[:port]/, "drop" removes it, "keep" leaves it.
	Referer string
	// Drop lists further header names to remove.
	Drop []string
}

// removed lists, in normalized form (see normalize), the headers that
// never leave: hop-by-hop ones, which describe one connection and not the
// request (RFC 9110 section 7.6.1), and those that can name the client,
// a proxy or the chain.
var removed = map[string]bool{
	// hop-by-hop
	"connection": true, "keep-alive": true, "te": true, "trailer": true,
	"transfer-encoding": true, "upgrade": true,
	// identifying
	"forwarded": true, "via": true, "x-real-ip": true, "client-ip": true, "true-client-ip": true,
	"x-client-ip": true, "x-originating-ip": true, "x-remote-ip": true, "x-remote-addr": true,
	"x-cluster-client-ip": true, "cf-connecting-ip": true, "fastly-client-ip": true,
	"x-proxyuser-ip": true, "from": true,
}

// removedPrefixes cover whole families: X-Forwarded-For, -Host, -Proto,
// -Port, -Server, …, and Proxy-Connection, Proxy-Authorization and every
// other Proxy-* header.
var removedPrefixes = []string{"x-forwarded-", "proxy-"}

// normalize folds case and '_' to '-': many servers read X_Forwarded_For
// as X-Forwarded-For, so both spellings must go.
func normalize(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, "_", "-"))
}

// Clean rewrites h, the headers of a request for target, in place: the one
// place where veilchain decides what a destination gets to see. It
// returns whether the request is a WebSocket upgrade, whose Connection and
// Upgrade headers it keeps (every other upgrade is dropped).
func (p *HeaderPolicy) Clean(h http.Header, target *url.URL) (websocket bool) {
	websocket = isWebSocketUpgrade(h)
	// Headers named by Connection are hop-by-hop too, whatever they are.
	named := map[string]bool{}
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			named[normalize(strings.TrimSpace(name))] = true
		}
	}
	for _, name := range p.Drop {
		named[normalize(name)] = true
	}
	for name := range h {
		n := normalize(name)
		drop := removed[n] || named[n]
		for _, prefix := range removedPrefixes {
			drop = drop || strings.HasPrefix(n, prefix)
		}
		if drop {
			delete(h, name)
		}
	}
	if p.UserAgent != "" {
		h["User-Agent"] = []string{p.UserAgent}
	}
	if p.AcceptLanguage != "" {
		h["Accept-Language"] = []string{p.AcceptLanguage}
	}
	p.cleanReferer(h, target)
	if websocket {
		h["Connection"] = []string{"Upgrade"}
		h["Upgrade"] = []string{"websocket"}
	}
	return websocket
}

func (p *HeaderPolicy) cleanReferer(h http.Header, target *url.URL) {
	refs := h.Values("Referer")
	if len(refs) == 0 || p.Referer == "keep" {
		return
	}
	ref, err := url.Parse(refs[0])
	if len(refs) > 1 || err != nil || ref.Host == "" {
		delete(h, "Referer") // several, or unparseable: nothing safe to keep
		return
	}
	if sameOrigin(ref, target) {
		return
	}
	if p.Referer == "drop" {
		delete(h, "Referer")
		return
	}
	h["Referer"] = []string{(&url.URL{Scheme: ref.Scheme, Host: ref.Host, Path: "/"}).String()}
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(hostPort(a), hostPort(b))
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "ws":
		return u.Host + ":80"
	case "https", "wss":
		return u.Host + ":443"
	}
	return u.Host
}

// isWebSocketUpgrade: Connection lists "upgrade" and Upgrade is websocket.
func isWebSocketUpgrade(h http.Header) bool {
	return headerHasToken(h, "Connection", "upgrade") && headerHasToken(h, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
