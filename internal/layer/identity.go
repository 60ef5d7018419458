// Package layer is the server side of a layered link: a `veilchain serve`
// port that speaks TLS 1.3 with a key of its own, lets through only
// clients that authenticate inside the TLS layer, and answers everyone
// else as an ordinary web server would.
package layer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/veilchain/veilchain/chain"
)

// The state directory holds the hop's identity: key.pem, its private key,
// which clients pin (by its public half) and which is never replaced once
// made; and cert.pem, a self-signed certificate for it, renewed from the
// same key when it nears its end, so the pin stays.
const (
	keyFile  = "key.pem"
	certFile = "cert.pem"
	// certLife is what public CAs issue at most (398 days), so the
	// certificate a prober sees is not an odd one.
	certLife = 397 * 24 * time.Hour
	// renewBefore renews a certificate this long before it ends.
	renewBefore = 30 * 24 * time.Hour
)

// Identity is a hop's certificate and the pin clients give for it.
type Identity struct {
	Cert tls.Certificate
	Pin  string
	// Created says the key was made now; Renewed, that the certificate was.
	Created, Renewed bool
}

// LoadOrCreate reads the identity kept in dir, making dir, the key and the
// certificate as needed. A key that exists but cannot be read is an
// error, never replaced: every client pins it.
func LoadOrCreate(dir string, now time.Time) (*Identity, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	id := &Identity{}
	keyPath, certPath := filepath.Join(dir, keyFile), filepath.Join(dir, certFile)
	keyPEM, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		// Two serves starting at once on one state dir must end with one
		// key: the second finds the first's and uses it.
		switch err := writeNew(keyPath, keyPEM); {
		case errors.Is(err, fs.ErrExist):
			if keyPEM, err = os.ReadFile(keyPath); err != nil {
				return nil, err
			}
		case err != nil:
			return nil, err
		default:
			id.Created = true
		}
	} else if err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key, cert, err := parseIdentity(keyPEM, certPEM, now)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	if cert == nil {
		der, err := selfSign(key, now)
		if err != nil {
			return nil, err
		}
		certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := writeReplacing(certPath, certPEM); err != nil {
			return nil, err
		}
		if cert, err = x509.ParseCertificate(der); err != nil {
			return nil, err
		}
		id.Renewed = !id.Created
	}
	id.Cert = tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	id.Pin = chain.PinOf(cert)
	return id, nil
}

// parseIdentity reads the key and, if it is still good for that key and
// for at least renewBefore, the certificate; a nil certificate means make
// a new one.
func parseIdentity(keyPEM, certPEM []byte, now time.Time) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, nil, fmt.Errorf("no PEM \"PRIVATE KEY\" block; move the file away to make a new key (clients must then get the new pin)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("private key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, nil, fmt.Errorf("private key: want an ECDSA P-256 key")
	}
	block, _ = pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return key, nil, nil
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !key.PublicKey.Equal(cert.PublicKey) || now.Before(cert.NotBefore) || now.Add(renewBefore).After(cert.NotAfter) {
		return key, nil, nil
	}
	return key, cert, nil
}

// selfSign makes a certificate for key, valid from an hour ago (clocks
// differ) for certLife. It names nobody: a pin needs no name.
func selfSign(key *ecdsa.PrivateKey, now time.Time) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certLife),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
}

// writeNew writes data to path, which must not exist yet, so that path
// appears whole or not at all; fs.ErrExist if it is there already.
func writeNew(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Link(tmp, path)
}

// writeReplacing writes data to path whole, replacing what was there.
func writeReplacing(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// writeTemp writes data to a new file (mode 0600) beside path.
func writeTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
