package chain

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// A layer is TLS 1.3 from us to one hop, inside the tunnel through the
// hops before it: hop k sees only TLS to hop k+1, and the credentials and
// destination meant for hop k+1 travel inside it. Our own hops (`veilchain
// serve`) are verified by a pin, the SHA-256 of their public key, so no CA
// is needed; a hop with a real certificate can be verified by CA instead.

// Pin formats: "sha256:" and the unpadded base64url of the SHA-256 of a
// certificate's SubjectPublicKeyInfo. base64url, because '+', '/' and '='
// would need escaping in a URL's query.
const pinPrefix = "sha256:"

// PinOf returns the pin of cert's public key. A certificate renewed with
// the same key keeps its pin.
func PinOf(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return pinPrefix + base64.RawURLEncoding.EncodeToString(sum[:])
}

// ParsePin checks a pin as written in a hop URL and returns it in its
// canonical form.
func ParsePin(s string) (string, error) {
	b64, ok := strings.CutPrefix(s, pinPrefix)
	if !ok {
		return "", fmt.Errorf("pin %q: want sha256:<43 base64url characters>, as `veilchain serve` prints it", s)
	}
	sum, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil || len(sum) != sha256.Size {
		return "", fmt.Errorf("pin %q: want sha256:<43 base64url characters>, as `veilchain serve` prints it", s)
	}
	return pinPrefix + base64.RawURLEncoding.EncodeToString(sum), nil
}

// PinMismatchError is a hop whose key is not the one its URL pins: the
// hop's key changed, or something else answers at its address.
type PinMismatchError struct {
	Want, Got string
}

func (e *PinMismatchError) Error() string {
	return fmt.Sprintf("the hop's key is %s but its URL pins %s: the key changed, or this is not that hop", e.Got, e.Want)
}

// ErrLayer marks a failed TLS layer to a hop (handshake or verification):
// nothing of the hop's protocol was sent.
var ErrLayer = errors.New("TLS to the hop")

// layerALPN is what a browser offers; our serve picks http/1.1 from it,
// and it is sent inside the encrypted part of the handshake, so a
// watcher sees only this ordinary offer.
var layerALPN = []string{"h2", "http/1.1"}

// pinnedConfig is the TLS to a hop verified by its pin and nothing else.
// The SNI is sni, or none when sni is empty: a pin needs no name.
func pinnedConfig(pin, sni string) *tls.Config {
	return &tls.Config{
		ServerName:         sni,
		MinVersion:         tls.VersionTLS13,
		NextProtos:         layerALPN,
		InsecureSkipVerify: true, // replaced by the pin check below, which runs on every handshake
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("the hop sent no certificate")
			}
			if got := PinOf(cs.PeerCertificates[0]); got != pin {
				return &PinMismatchError{Want: pin, Got: got}
			}
			return nil
		},
	}
}

// startLayer runs the TLS handshake of a layer on conn. It returns only
// when the hop is verified: before that, not one byte of the hop's own
// protocol has been written.
func startLayer(ctx context.Context, conn net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLayer, err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p == "h2" {
		// Offered to look like a browser; the hop would expect HTTP/2.
		tc.Close()
		return nil, fmt.Errorf("%w: the hop chose HTTP/2, which is not a proxy protocol", ErrLayer)
	}
	return tc, nil
}

// PlainLinks says, one sentence each, what crosses a link of hops
// unprotected: a plain link that leaves this machine, and every plain
// link after the first, which the hop before it reads whatever its
// address. A link to a hop by TLS without verification is named too.
func PlainLinks(hops []Hop) []string {
	var out []string
	for i, pos := range hops {
		members := membersOf(pos)
		for _, h := range members {
			what, cross := "every destination name", "crosses"
			if i+1 < len(hops) {
				what = fmt.Sprintf("hop %d's address", i+2)
			}
			if hasUser(h) {
				what, cross = fmt.Sprintf("hop %d's password and %s", i+1, what), "cross"
			}
			switch Security(h) {
			case "unverified":
				out = append(out, fmt.Sprintf("hop %d (%s) is TLS without verification (insecure=1): whoever is on the path can pose as it and read %s", i+1, h.Addr(), what))
			case "":
				if i == 0 && isLoopbackHost(h.Addr()) {
					continue // stays on this machine
				}
				where := "the network"
				if i > 0 {
					where = fmt.Sprintf("hop %d", i)
				}
				out = append(out, fmt.Sprintf("hop %d (%s) is a plain link: %s %s %s unencrypted; use socks5s:// with the pin its serve prints", i+1, h.Addr(), what, cross, where))
			}
		}
	}
	return out
}

func hasUser(h Hop) bool {
	switch h := h.(type) {
	case *SOCKS5:
		return h.User != ""
	case *HTTPConnect:
		return h.User != ""
	case *SOCKS4:
		return h.UserID != ""
	case *SSH:
		return h.Password != ""
	}
	return false
}

func isLoopbackHost(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Security says how the link to h is protected, for `check` and the
// warnings at start: "pinned", "CA", "unverified" (insecure=1) or "" (a
// plain link: the hop before it, and the network in between, read it),
// and "host key" for SSH.
func Security(h Hop) string {
	var cfg *tls.Config
	var pin string
	switch h := h.(type) {
	case *SOCKS5:
		cfg, pin = h.TLS, h.Pin
	case *HTTPConnect:
		cfg, pin = h.TLS, h.Pin
	case *SSH:
		return "host key" // no other way in: the key is always verified
	}
	switch {
	case cfg == nil:
		return ""
	case pin != "":
		return "pinned"
	case cfg.InsecureSkipVerify:
		return "unverified"
	}
	return "CA"
}
