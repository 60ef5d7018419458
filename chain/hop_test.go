package chain

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseHop(t *testing.T) {
	tests := []struct {
		url      string
		addr     string
		user     string
		pass     string
		wantErr  string
		noSecret string // must not appear in the error
	}{
		{url: "socks5://127.0.0.1:9001", addr: "127.0.0.1:9001"},
		{url: "socks5h://proxy.example:1080", addr: "proxy.example:1080"},
		{url: "SOCKS5://proxy.example", addr: "proxy.example:1080"},
		{url: "socks5://alice:s3cret@127.0.0.1:9002", addr: "127.0.0.1:9002", user: "alice", pass: "s3cret"},
		{url: "socks5://alice:p%40ss@127.0.0.1:9002", addr: "127.0.0.1:9002", user: "alice", pass: "p@ss"},
		{url: "socks5://[2001:db8::1]:1080", addr: "[2001:db8::1]:1080"},
		{url: "socks5://[::1]", addr: "[::1]:1080"},
		{url: "socks5://alice@127.0.0.1:1", addr: "127.0.0.1:1", user: "alice"},
		{url: "socks9://h:1", wantErr: `unsupported scheme "socks9"`},
		{url: "ftp://h:1", wantErr: "unsupported scheme"},
		{url: "127.0.0.1:1080", wantErr: "want scheme://"},
		{url: "socks5://", wantErr: "want scheme://"},
		{url: "socks5://:1080", wantErr: "missing host"},
		{url: "socks5://h:0", wantErr: "bad port"},
		{url: "socks5://h:70000", wantErr: "bad port"},
		{url: "socks5://h:1/path", wantErr: "unexpected path"},
		{url: "socks5://h:1?x=1", wantErr: `unknown option "x"`},
		{url: "socks5://h:1?ca=/x", wantErr: `unknown option "ca"`},
		{url: "socks5://h:1?timeout=soon", wantErr: "not a positive duration"},
		{url: "socks4://u:pw@h:1", wantErr: "no password"},
		{url: "https://h?insecure=maybe", wantErr: "want 1 or 0"},
		{url: "socks5s://h?pin=sha256:abc", wantErr: "want sha256:<43 base64url"},
		{url: "socks5s://h?pin=" + strings.Repeat("A", 43), wantErr: "want sha256:<43 base64url"},
		{url: "socks5s://h?pin=" + testPin + "&insecure=1", wantErr: "leave out ca= and insecure="},
		{url: "socks5s://h?pipeline=1", wantErr: `unknown option "pipeline"`}, // always pipelined inside TLS
		{url: "socks5://h?pin=" + testPin, wantErr: `unknown option "pin"`},   // a plain link has no key to pin
		{url: "socks5://alice@h?password-env=VC_TEST_UNSET_VAR", wantErr: "that variable is not set"},
		{url: "socks5://alice:pw@h?password-env=HOME", wantErr: "give the password one way"},
		{url: "socks5://h?password-env=HOME", wantErr: "need a user"},
		{url: "socks4a://alice@h?password-env=HOME", wantErr: `unknown option "password-env"`},
		{url: "socks5://alice@h?password-file=/nonexistent/pw", wantErr: "password-file:"},
		{url: "https://h?pipeline=1", wantErr: `unknown option "pipeline"`}, // TLS to the hop takes round trips anyway
		{url: "socks4a://h?pipeline=1", wantErr: `unknown option "pipeline"`},
		{url: "http://h?pipeline=yes", wantErr: "want 1 or 0"},
		{url: "https://h?ca=/nonexistent/ca.pem", wantErr: "ca:"},
		{url: "socks5://:pw@h:1", wantErr: "user name must be", noSecret: "pw"},
		{url: "socks5://u:hunter2@h:99999", wantErr: "bad port", noSecret: "hunter2"},
		{url: "socks5://u:hunter2@h:1/x", wantErr: "unexpected path", noSecret: "hunter2"},
		{url: "socks5://u:hunter2@h:1\x7f", wantErr: "hop URL", noSecret: "hunter2"},
		{url: "socks5://" + strings.Repeat("u", 256) + ":p@h:1", wantErr: "user name must be"},
		{url: "socks5://alice:hunter2/x@h:1", addr: "h:1", user: "alice", pass: "hunter2/x"},
		{url: "socks5://alice:pa%23ss%3Fw%40@h:1", addr: "h:1", user: "alice", pass: "pa#ss?w@"},
		{url: "socks5://alice:s3cr?et@h:1", wantErr: "percent-encode", noSecret: "s3cr"},
		{url: "socks5://alice:hunter2/x@h:99999", wantErr: "bad port", noSecret: "hunter2"},
		{url: "socks5://alice:1234/abcd@h:1/p", wantErr: "unexpected path", noSecret: "1234/abcd"},
		{url: "socks9://alice:hunter2@h:1", wantErr: "unsupported scheme", noSecret: "hunter2"},
		{url: "alice:hunter2@h:1", wantErr: "want scheme://", noSecret: "hunter2"},
		{url: "socks5://alice:hun%zzter2@h:1", wantErr: "bad %-escape", noSecret: "hun"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			h, err := ParseHop(tt.url)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseHop(%q) error = %v, want it to contain %q", tt.url, err, tt.wantErr)
				}
				if tt.noSecret != "" && strings.Contains(err.Error(), tt.noSecret) {
					t.Fatalf("error %q reveals the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHop(%q): %v", tt.url, err)
			}
			s, ok := h.(*SOCKS5)
			if !ok {
				t.Fatalf("ParseHop(%q) = %T, want *SOCKS5", tt.url, h)
			}
			if s.Addr() != tt.addr || s.User != tt.user || s.Password != tt.pass {
				t.Fatalf("ParseHop(%q) = %q %q %q, want %q %q %q", tt.url, s.Addr(), s.User, s.Password, tt.addr, tt.user, tt.pass)
			}
		})
	}
}

func TestParseHopSchemes(t *testing.T) {
	tests := []struct {
		url  string
		want string // %#v-ish summary
	}{
		{"socks4a://alice@h", "socks4a h:1080 alice"},
		{"socks4://h:1081", "socks4 h:1081 "},
		{"http://h", "http h:8080 : tls=false"},
		{"HTTP://u:p%3Aq@h:3128", "http h:3128 u:p:q tls=false"},
		{"https://u:p@proxy.example?sni=front.example", "https proxy.example:443 u:p tls=true sni=front.example security=CA"},
		{"https://127.0.0.1:8443?insecure=1", "https 127.0.0.1:8443 : tls=true sni=127.0.0.1 security=unverified"},
		{"socks5://h:1?timeout=250ms", "socks5 h:1 timeout=250ms"},
		{"socks5://h:1?pipeline=1", "socks5 h:1 pipeline"},
		{"http://h?pipeline=1&timeout=1s", "http h:8080 : tls=false pipeline timeout=1s"},
		{"socks4a://h?timeout=3s", "socks4a h:1080  timeout=3s"},
		{"https://proxy.example?ca=/etc/ssl/a@b.pem&insecure=1", ""}, // '@' in the query: not a user part
		{"socks5s://u:p@hop.example?pin=" + testPin, "socks5s hop.example:443 u:p security=pinned sni="},
		{"socks5s://hop.example:9001?pin=" + testPin + "&sni=cdn.example&timeout=2s", "socks5s hop.example:9001 : security=pinned sni=cdn.example timeout=2s"},
		{"socks5s://hop.example:9001", "socks5s hop.example:9001 : security=CA sni=hop.example"},
		{"socks5s://127.0.0.1:9001?insecure=1", "socks5s 127.0.0.1:9001 : security=unverified sni=127.0.0.1"},
		{"https://u:p@proxy.example?pin=" + testPin, "https proxy.example:443 u:p tls=true sni= security=pinned"},
	}
	for _, tt := range tests {
		h, err := ParseHop(tt.url)
		if tt.want == "" {
			if err == nil || !strings.Contains(err.Error(), "a@b.pem") {
				t.Errorf("ParseHop(%q) = %v: want the ca file error, for host proxy.example", tt.url, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseHop(%q): %v", tt.url, err)
			continue
		}
		if got := summary(h); got != tt.want {
			t.Errorf("ParseHop(%q) = %s, want %s", tt.url, got, tt.want)
		}
	}
}

func summary(h Hop) string {
	s := summaryOf(h)
	if t := h.(interface{ HandshakeTimeout() time.Duration }).HandshakeTimeout(); t != 0 {
		s += " timeout=" + t.String()
	}
	return s
}

func summaryOf(h Hop) string {
	switch h := h.(type) {
	case *SOCKS5:
		s := "socks5 " + h.Addr() + map[bool]string{true: " pipeline"}[h.Pipeline]
		if h.TLS != nil {
			s = "socks5s " + h.Addr() + " " + h.User + ":" + h.Password + " security=" + Security(h) + " sni=" + h.TLS.ServerName
		}
		return s
	case *SOCKS4:
		kind := "socks4"
		if h.A {
			kind = "socks4a"
		}
		return kind + " " + h.Addr() + " " + h.UserID
	case *HTTPConnect:
		if h.TLS == nil {
			return "http " + h.Addr() + " " + h.User + ":" + h.Password + " tls=false" + map[bool]string{true: " pipeline"}[h.Pipeline]
		}
		return "https " + h.Addr() + " " + h.User + ":" + h.Password + " tls=true sni=" + h.TLS.ServerName +
			" security=" + Security(h)
	}
	return "?"
}

// testPin is a well-formed pin of no key.
var testPin = "sha256:" + strings.Repeat("A", 43)

// A hop's password can come from the environment or a file, so that it
// is not in argv for every user of the machine to read (ps).
func TestHopPasswordFromEnvOrFile(t *testing.T) {
	t.Setenv("VC_TEST_HOP_PW", "from-env")
	file := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(file, []byte("from-file\nignored\n"), 0o600)
	for url, want := range map[string]string{
		"socks5s://alice@h:1?password-env=VC_TEST_HOP_PW&pin=" + testPin: "from-env",
		"http://alice@h:1?password-file=" + file:                         "from-file",
	} {
		h, err := ParseHop(url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		var got string
		switch h := h.(type) {
		case *SOCKS5:
			got = h.Password
		case *HTTPConnect:
			got = h.Password
		}
		if got != want {
			t.Errorf("%s: password %q, want %q", url, got, want)
		}
	}
}
