package layer

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestIdentityKeepsItsPin: a key made once is kept across restarts, its
// certificate is renewed from the same key near its end (the pin stays),
// and a key that cannot be read is an error, never replaced.
func TestIdentityKeepsItsPin(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	first, err := LoadOrCreate(dir, now)
	if err != nil || !first.Created {
		t.Fatalf("first start: %+v, %v", first, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, keyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	again, err := LoadOrCreate(dir, now.Add(time.Hour))
	if err != nil || again.Created || again.Renewed || again.Pin != first.Pin {
		t.Fatalf("restart: %+v, %v; want the same pin %s, nothing made", again, err, first.Pin)
	}
	if !bytes.Equal(again.Cert.Certificate[0], first.Cert.Certificate[0]) {
		t.Fatal("restart made a new certificate")
	}
	later := now.Add(certLife - renewBefore + time.Hour)
	renewed, err := LoadOrCreate(dir, later)
	if err != nil || !renewed.Renewed || renewed.Pin != first.Pin {
		t.Fatalf("near the end: %+v, %v; want a renewed certificate with pin %s", renewed, err, first.Pin)
	}
	if !renewed.Cert.Leaf.NotAfter.After(later.Add(renewBefore)) {
		t.Fatalf("renewed certificate ends %v", renewed.Cert.Leaf.NotAfter)
	}
	os.WriteFile(filepath.Join(dir, certFile), []byte("garbage"), 0o600)
	if id, err := LoadOrCreate(dir, now); err != nil || !id.Renewed || id.Pin != first.Pin {
		t.Fatalf("broken certificate: %+v, %v; want it remade for the same key", id, err)
	}
	os.WriteFile(filepath.Join(dir, keyFile), []byte("garbage"), 0o600)
	if _, err := LoadOrCreate(dir, now); err == nil {
		t.Fatal("a broken key was accepted or replaced")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, keyFile)); string(b) != "garbage" {
		t.Fatal("a broken key was overwritten")
	}
}

// TestIdentityRace: serves started together on one state dir end with
// one key.
func TestIdentityRace(t *testing.T) {
	dir := t.TempDir()
	pins := make([]string, 8)
	var wg sync.WaitGroup
	for i := range pins {
		wg.Go(func() {
			id, err := LoadOrCreate(dir, time.Now())
			if err != nil {
				t.Error(err)
				return
			}
			pins[i] = id.Pin
		})
	}
	wg.Wait()
	for _, p := range pins {
		if p != pins[0] {
			t.Fatalf("pins differ: %q", pins)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %q", left)
	}
}

// FuzzParseIdentity: no panic on any state files; a certificate accepted
// is for the key, and current.
func FuzzParseIdentity(f *testing.F) {
	dir := f.TempDir()
	now := time.Now()
	if _, err := LoadOrCreate(dir, now); err != nil {
		f.Fatal(err)
	}
	keyPEM, _ := os.ReadFile(filepath.Join(dir, keyFile))
	certPEM, _ := os.ReadFile(filepath.Join(dir, certFile))
	f.Add(keyPEM, certPEM)
	f.Add(keyPEM, []byte{})
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), certPEM)
	f.Fuzz(func(t *testing.T, keyPEM, certPEM []byte) {
		key, cert, err := parseIdentity(keyPEM, certPEM, now)
		if err != nil || cert == nil {
			return
		}
		if !key.PublicKey.Equal(cert.PublicKey) || now.After(cert.NotAfter) {
			t.Fatal("accepted a certificate that is not for the key, or not current")
		}
		if _, err := x509.ParseCertificate(cert.Raw); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzClassify: no panic on any first flight; only a flight that carries
// the right credentials reaches a proxy.
func FuzzClassify(f *testing.F) {
	for _, s := range [][]byte{socksFlight("alice", "secret"), socksFlight("alice", "x"), connectFlight("alice:secret"), connectFlight(""), []byte("GET / HTTP/1.1\r\n\r\n"), {5}, {5, 255}} {
		f.Add(s)
	}
	g := &Gate{Auth: func(_, u, p string) bool { return u == "alice" && p == "secret" }}
	f.Fuzz(func(t *testing.T, flight []byte) {
		to := g.classify(bufio.NewReader(bytes.NewReader(flight)), "127.0.0.1:1")
		if to == toDecoy {
			return
		}
		if !bytes.Contains(flight, []byte("alice")) && !bytes.Contains(flight, []byte("YWxpY2U6c2VjcmV0")) {
			t.Fatalf("%q went to %d without the credentials", flight, to)
		}
	})
}
