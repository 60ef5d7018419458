package chain

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCert makes a certificate for key, for 127.0.0.1 and name, valid
// from notBefore to notAfter, signed by parent (self-signed when nil).
func testCert(t *testing.T, key *ecdsa.PrivateKey, name string, notBefore, notAfter time.Time, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), NotBefore: notBefore, NotAfter: notAfter,
		DNSNames: []string{name}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA: parent == nil, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// recordingTLSServer serves TLS with cert on loopback and sends what each
// client wrote after the handshake (nil if the handshake failed) to got.
func recordingTLSServer(t *testing.T, cert *x509.Certificate, key *ecdsa.PrivateKey) (string, chan []byte) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}},
		NextProtos:   []string{"http/1.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if err := c.(*tls.Conn).Handshake(); err != nil {
				c.Close()
				got <- nil
				continue
			}
			b, _ := io.ReadAll(c) // until the client gives up and closes
			c.Close()
			got <- b
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), got
}

// TestLayerRefusesBeforeAnySOCKSByte: a wrong pin, a changed key, a CA
// that did not sign the certificate, an expired certificate and one for
// another name each end the dial in the TLS handshake, and the server
// reads not one byte of SOCKS (on the wire, not only by the error).
func TestLayerRefusesBeforeAnySOCKSByte(t *testing.T) {
	now := time.Now()
	caKey, otherCAKey, hopKey, newHopKey := newKey(t), newKey(t), newKey(t), newKey(t)
	ca := testCert(t, caKey, "ca", now.Add(-time.Hour), now.Add(time.Hour), nil, nil)
	otherCA := testCert(t, otherCAKey, "ca", now.Add(-time.Hour), now.Add(time.Hour), nil, nil)
	good := testCert(t, hopKey, "hop.test", now.Add(-time.Hour), now.Add(time.Hour), ca, caKey)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o600)
	pin := PinOf(good)
	tests := []struct {
		name    string
		cert    *x509.Certificate
		key     *ecdsa.PrivateKey
		query   string
		wantErr string
	}{
		{"pin of another key", good, hopKey, "pin=" + PinOf(otherCA), "its URL pins " + PinOf(otherCA)},
		{"the hop's key changed", testCert(t, newHopKey, "hop.test", now.Add(-time.Hour), now.Add(time.Hour), nil, nil), newHopKey,
			"pin=" + pin, "its URL pins " + pin},
		{"signed by another CA", testCert(t, hopKey, "hop.test", now.Add(-time.Hour), now.Add(time.Hour), otherCA, otherCAKey), hopKey,
			"ca=" + caFile + "&sni=hop.test", "unknown authority"},
		{"expired", testCert(t, hopKey, "hop.test", now.Add(-2*time.Hour), now.Add(-time.Hour), ca, caKey), hopKey,
			"ca=" + caFile + "&sni=hop.test", "expired"},
		{"another name", good, hopKey, "ca=" + caFile + "&sni=other.test", "other.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, got := recordingTLSServer(t, tt.cert, tt.key)
			h, err := ParseHop("socks5s://alice:secret@" + addr + "?" + tt.query)
			if err != nil {
				t.Fatal(err)
			}
			c := &Chain{Hops: []Hop{h}}
			conn, err := c.DialContext(context.Background(), "tcp", "dest.example:80")
			if err == nil {
				conn.Close()
				t.Fatal("dial succeeded")
			}
			if !errors.Is(err, ErrLayer) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want ErrLayer saying %q", err, tt.wantErr)
			}
			if pm, ok := errors.AsType[*PinMismatchError](err); ok && pm.Got != PinOf(tt.cert) {
				t.Errorf("error names the server's pin as %s, want %s", pm.Got, PinOf(tt.cert))
			}
			select {
			case b := <-got:
				if len(b) != 0 {
					t.Fatalf("the server read %q after the handshake", b)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the server never finished")
			}
		})
	}
	// The positive control: the right pin and the right CA get through,
	// and the server then reads the whole SOCKS flight.
	for _, q := range []string{"pin=" + pin, "ca=" + caFile + "&sni=hop.test"} {
		addr, got := recordingTLSServer(t, good, hopKey)
		h, _ := ParseHop("socks5s://alice:secret@" + addr + "?" + q)
		c := &Chain{Hops: []Hop{h}, HandshakeTimeout: 300 * time.Millisecond}
		if _, err := c.DialContext(context.Background(), "tcp", "dest.example:80"); err == nil || errors.Is(err, ErrLayer) {
			t.Fatalf("%s: err = %v, want a timeout waiting for the SOCKS reply", q, err)
		}
		if b := <-got; !strings.Contains(string(b), "alice") || !strings.Contains(string(b), "dest.example") {
			t.Fatalf("%s: server read %q, want the SOCKS flight", q, b)
		}
	}
}

func TestPlainLinks(t *testing.T) {
	hops := func(urls ...string) []Hop {
		var out []Hop
		for _, u := range urls {
			h, err := ParseHop(u)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, h)
		}
		return out
	}
	pinned := "socks5s://a:b@198.18.0.2:9001?pin=" + testPin
	tests := []struct {
		name string
		hops []Hop
		want []string
	}{
		{"all layered", hops(pinned, pinned), nil},
		{"local first hop (Tor, ssh -D)", hops("socks5://127.0.0.1:9050", pinned), nil},
		{"plain remote first hop", hops("socks5://198.18.0.2:1080", pinned), []string{"hop 1 (198.18.0.2:1080) is a plain link: hop 2's address crosses the network"}},
		{"plain exit behind a layered hop", hops(pinned, "socks5://alice:secret@198.18.0.3:1080"),
			[]string{"hop 2 (198.18.0.3:1080) is a plain link: hop 2's password and every destination name cross hop 1 unencrypted"}},
		{"plain exit behind a local hop", hops("socks5://127.0.0.1:9050", "http://198.18.0.3:3128"),
			[]string{"hop 2 (198.18.0.3:3128) is a plain link: every destination name crosses hop 1"}},
		{"unverified TLS", hops("socks5s://198.18.0.2:9001?insecure=1"), []string{"hop 1 (198.18.0.2:9001) is TLS without verification"}},
		{"a pool with one plain member", []Hop{&Pool{Members: hops(pinned, "socks4a://198.18.0.4:1080")}}, []string{"hop 1 (198.18.0.4:1080) is a plain link"}},
	}
	for _, tt := range tests {
		got := PlainLinks(tt.hops)
		if len(got) != len(tt.want) {
			t.Errorf("%s: PlainLinks = %q, want %d warnings", tt.name, got, len(tt.want))
			continue
		}
		for i := range got {
			if !strings.Contains(got[i], tt.want[i]) {
				t.Errorf("%s: warning %q does not say %q", tt.name, got[i], tt.want[i])
			}
		}
	}
}

// FuzzParsePin: no panic; an accepted pin is canonical, and parses to itself.
func FuzzParsePin(f *testing.F) {
	for _, s := range []string{testPin, "sha256:", "sha256:abc", "sha1:" + strings.Repeat("A", 43), "sha256:" + strings.Repeat("_", 43)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pin, err := ParsePin(s)
		if err != nil {
			return
		}
		if again, err := ParsePin(pin); err != nil || again != pin || len(pin) != len(pinPrefix)+43 {
			t.Fatalf("ParsePin(%q) = %q, then %q, %v", s, pin, again, err)
		}
	})
}

// BenchmarkLayerHandshake is one layer's TLS 1.3 handshake, client and
// server in this process over loopback TCP: the CPU a socks5s hop adds to
// a connection's setup, per key exchange Go may choose.
func BenchmarkLayerHandshake(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ := x509.ParseCertificate(der)
	srvCfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}, NextProtos: []string{"http/1.1"}}
	for _, bc := range []struct {
		name   string
		curves []tls.CurveID
	}{{"default", nil}, {"x25519", []tls.CurveID{tls.X25519}}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := pinnedConfig(PinOf(cert), "")
			cfg.CurvePreferences = bc.curves
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						tc := tls.Server(c, srvCfg)
						tc.Handshake()
						io.Copy(io.Discard, tc)
						tc.Close()
					}()
				}
			}()
			b.ReportAllocs()
			for b.Loop() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				tc, err := startLayer(context.Background(), c, cfg)
				if err != nil {
					b.Fatal(err)
				}
				tc.Close()
			}
		})
	}
}
