package layer

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/veilchain/veilchain/internal/conns"
)

// Where the gate sends a client, as indexes into Split's listeners.
const (
	toSOCKS = iota // SOCKS5 that authenticated in its first flight
	toHTTP         // an HTTP proxy request that authenticated
	toDecoy        // everyone else: a prober, a browser, a scanner
)

// maxFirstFlight bounds what the gate reads before it decides: an HTTP
// request head, or a SOCKS greeting with its auth.
const maxFirstFlight = 64 << 10

// Gate is the TLS side of a serve port. A client gets through to the
// proxy only by authenticating inside TLS before it is sent a single byte
// of a proxy protocol: SOCKS5 with its greeting and RFC 1929 auth in one
// flight (as a socks5s:// hop sends them), or an HTTP CONNECT (or
// absolute-form request) with Basic Proxy-Authorization. Anything else is
// handed, byte for byte, to a decoy web server, so to a prober the port is
// an HTTPS site and nothing more.
type Gate struct {
	// TLS carries the certificate. Only TLS 1.3 is offered, and ALPN
	// http/1.1: what a browser prober is answered in is HTTP/1.1.
	TLS *tls.Config
	// Auth checks credentials from source (host:port); nil lets every
	// client through (a loopback or --allow-open serve).
	Auth func(source, user, password string) bool
	// Timeout bounds the TLS handshake and the first flight together.
	Timeout time.Duration
	// Logger, if set, hears of accept failures.
	Logger *slog.Logger
}

// Split serves TLS on ln and returns the listeners that get the clients
// the gate let through to SOCKS, to HTTP, and the rest (for the decoy).
// Each gets the decrypted stream with nothing lost: the bytes the gate
// read to decide come first.
func (g *Gate) Split(ln net.Listener) (socks, httpLn, decoy net.Listener) {
	cfg := g.TLS.Clone()
	cfg.MinVersion = tls.VersionTLS13
	if len(cfg.NextProtos) == 0 {
		cfg.NextProtos = []string{"http/1.1"}
	}
	lns := conns.Split(ln, 3, g.Timeout, func(c net.Conn) (net.Conn, int) { return g.route(c, cfg) }, g.Logger)
	return lns[toSOCKS], lns[toHTTP], lns[toDecoy]
}

func (g *Gate) route(c net.Conn, cfg *tls.Config) (net.Conn, int) {
	tc := tls.Server(c, cfg)
	if err := tc.Handshake(); err != nil {
		answerNotTLS(err)
		c.Close()
		return nil, -1
	}
	rec := &recorder{r: tc}
	dest := g.classify(bufio.NewReaderSize(rec, 4096), c.RemoteAddr().String())
	return &conns.PrefixConn{Conn: tc, Prefix: rec.buf.Bytes()}, dest
}

// classify reads the first flight from br and says where it goes. It
// reads only what it needs: a SOCKS client that waits for an answer
// before sending its auth gets none, and ends at the decoy.
func (g *Gate) classify(br *bufio.Reader, source string) int {
	first, err := br.Peek(1)
	switch {
	case err != nil:
		return toDecoy
	case first[0] == 5:
		if g.socksAuthenticated(br, source) {
			return toSOCKS
		}
		return toDecoy
	case first[0] < 'A' || first[0] > 'Z':
		return toDecoy // no HTTP method: the decoy answers it as any web server would
	}
	req, err := http.ReadRequest(br)
	if err != nil {
		return toDecoy
	}
	req.Body.Close()
	if req.Method != http.MethodConnect && !req.URL.IsAbs() {
		return toDecoy // a request for a page: the decoy's
	}
	if g.Auth == nil {
		return toHTTP
	}
	user, pass, ok := proxyBasicAuth(req.Header.Get("Proxy-Authorization"))
	if ok && g.Auth(source, user, pass) {
		return toHTTP
	}
	return toDecoy
}

// socksAuthenticated reads a SOCKS5 greeting and, when credentials are
// needed, the RFC 1929 request right behind it, and checks them.
func (g *Gate) socksAuthenticated(br *bufio.Reader, source string) bool {
	hdr, err := br.Peek(2)
	if err != nil {
		return false
	}
	n := 2 + int(hdr[1])
	greeting, err := br.Peek(n)
	if err != nil {
		return false
	}
	if g.Auth == nil {
		return bytes.IndexByte(greeting[2:], 0x00) >= 0
	}
	if bytes.IndexByte(greeting[2:], 0x02) < 0 {
		return false
	}
	b, err := br.Peek(n + 2)
	if err != nil || b[n] != 1 {
		return false
	}
	ulen := int(b[n+1])
	if b, err = br.Peek(n + 2 + ulen + 1); err != nil {
		return false
	}
	plen := int(b[n+2+ulen])
	if b, err = br.Peek(n + 2 + ulen + 1 + plen); err != nil {
		return false
	}
	user := string(b[n+2 : n+2+ulen])
	pass := string(b[n+3+ulen:])
	return g.Auth(source, user, pass)
}

// proxyBasicAuth decodes a Basic Proxy-Authorization value.
func proxyBasicAuth(v string) (user, pass string, ok bool) {
	scheme, b64, found := strings.Cut(v, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(raw), ":")
}

// answerNotTLS answers a client that did not speak TLS the way Go's own
// HTTPS server does (net/http, Server.ServeTLS): a plain-HTTP request gets
// a 400 that says so, anything else a close. Another answer here would
// tell a prober that this is no ordinary HTTPS server.
func answerNotTLS(err error) {
	var re tls.RecordHeaderError
	if !errors.As(err, &re) || re.Conn == nil {
		return
	}
	switch string(re.RecordHeader[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
	}
}

// recorder keeps every byte read through it, for replay.
type recorder struct {
	r   io.Reader
	buf bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	if r.buf.Len() >= maxFirstFlight {
		return 0, errors.New("first flight too long")
	}
	n, err := r.r.Read(p[:min(len(p), maxFirstFlight-r.buf.Len())])
	r.buf.Write(p[:n])
	return n, err
}
