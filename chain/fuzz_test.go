package chain

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzParseHop: no panic; an accepted URL has a host:port address, and no
// error message carries the password.
func FuzzParseHop(f *testing.F) {
	for _, s := range []string{"socks5://127.0.0.1:9001", "socks5h://u:p@h:1", "socks5://[::1]", "http://h", "socks5://u:p@h:1/x", "%zz", "ssh://u:pw@h?hostkey=SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU&isolate=user", "socks5://h?isolate=destination"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		h, err := ParseHop(raw)
		if err != nil {
			// The password, as a person reads the URL: between the first
			// ':' of the user part and the last '@'.
			_, rest, ok := strings.Cut(raw, "://")
			at := strings.LastIndex(rest, "@")
			if !ok || at < 0 {
				return
			}
			_, pw, _ := strings.Cut(rest[:at], ":")
			if len(pw) >= 4 && !strings.Contains(rest[at:], pw) && strings.Contains(err.Error(), pw) {
				t.Fatalf("error %q reveals password %q", err, pw)
			}
			return
		}
		if _, _, err := net.SplitHostPort(h.Addr()); err != nil {
			t.Fatalf("ParseHop(%q).Addr() = %q: %v", raw, h.Addr(), err)
		}
	})
}

// scriptConn is a net.Conn that answers reads from a fixed script and
// swallows writes.
type scriptConn struct {
	net.Conn
	r *bytes.Reader
}

func (c *scriptConn) Read(b []byte) (int, error)         { return c.r.Read(b) }
func (c *scriptConn) Write(b []byte) (int, error)        { return len(b), nil }
func (c *scriptConn) SetDeadline(time.Time) error        { return nil }
func (c *scriptConn) Close() error                       { return nil }
func (c *scriptConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *scriptConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(t time.Time) error { return nil }

// FuzzSOCKS5Reply feeds arbitrary server answers to the client handshake:
// it must not panic, and must succeed only on a well-formed success reply,
// leaving the bytes after it unread.
func FuzzSOCKS5Reply(f *testing.F) {
	f.Add([]byte{5, 0, 5, 0, 0, 1, 1, 2, 3, 4, 0, 80, 'x'}, false)
	f.Add([]byte("\x05\x02\x01\x00\x05\x00\x00\x03\x04bind\x00\x01"), true)
	f.Add([]byte{5, 0xFF}, false)
	f.Add([]byte{5, 0, 5, 5, 0, 1}, false)
	f.Fuzz(func(t *testing.T, answer []byte, auth bool) { checkSOCKS5Reply(t, answer, auth, false) })
}

// FuzzSOCKS5PipelinedReply is FuzzSOCKS5Reply for a pipelined hop, whose
// replies are read after everything was sent.
func FuzzSOCKS5PipelinedReply(f *testing.F) {
	f.Add([]byte{5, 0, 5, 0, 0, 1, 1, 2, 3, 4, 0, 80, 'x'}, false)
	f.Add([]byte("\x05\x02\x01\x00\x05\x00\x00\x03\x04bind\x00\x01"), true)
	f.Add([]byte("\x05\x02\x01\x01"), true)
	f.Add([]byte{5, 0, 5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80}, false)
	f.Fuzz(func(t *testing.T, answer []byte, auth bool) { checkSOCKS5Reply(t, answer, auth, true) })
}

// checkSOCKS5Reply runs a hop's handshake against answer and checks that
// a success was really one, and consumed exactly the replies.
func checkSOCKS5Reply(t *testing.T, answer []byte, auth, pipeline bool) {
	h := &SOCKS5{Address: "h:1", Pipeline: pipeline}
	if auth {
		h.User, h.Password = "u", "p"
	}
	conn := &scriptConn{r: bytes.NewReader(answer)}
	out, err := h.Connect(context.Background(), conn, "dest.example:443")
	if err != nil {
		return
	}
	// Work out independently how long the success must have been.
	want := 2
	if auth {
		want += 2
	}
	if len(answer) < want+4 || answer[want+1] != 0 {
		t.Fatalf("accepted %x without a success reply", answer)
	}
	switch answer[want+3] {
	case 1:
		want += 4 + 4 + 2
	case 4:
		want += 4 + 16 + 2
	case 3:
		want += 4 + 1 + int(answer[want+4]) + 2
	default:
		t.Fatalf("accepted %x with a bad address type", answer)
	}
	if used := len(answer) - conn.r.Len(); out != conn || used != want {
		t.Fatalf("accepted %x after reading %d bytes, want exactly %d", answer, used, want)
	}
}

// FuzzParseHostKey: no panic; an accepted fingerprint is canonical
// (parsing it again gives it back) and is SHA256: with 43 characters.
func FuzzParseHostKey(f *testing.F) {
	for _, s := range []string{"SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU", "SHA256:47DEQpj8HBSa /TImW 5JCeuQeRkm5NMpJWZG3hSuFU", "SHA256:", "MD5:aa:bb", "sha256:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseHostKey(s)
		if err != nil {
			return
		}
		if len(fp) != len("SHA256:")+43 || !strings.HasPrefix(fp, "SHA256:") {
			t.Fatalf("ParseHostKey(%q) = %q", s, fp)
		}
		if again, err := ParseHostKey(fp); err != nil || again != fp {
			t.Fatalf("ParseHostKey(%q) = %q, %v; want it back", fp, again, err)
		}
	})
}

// FuzzParseIsolation: no panic; what is accepted prints back as itself.
func FuzzParseIsolation(f *testing.F) {
	for _, s := range []string{"", "none", "listener", "user", "destination", "connection", "User", "dest"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		i, err := ParseIsolation(s)
		if err != nil {
			return
		}
		if s != "" && i.String() != s {
			t.Fatalf("ParseIsolation(%q) = %v", s, i)
		}
	})
}
