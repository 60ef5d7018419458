package chain

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshServer is an in-process SSH server (x/crypto's) that records what
// a client did: auth attempts, connections, and the targets of its
// direct-tcpip channels, which it serves as echo streams (a target named
// "refused.test" is refused as OpenSSH refuses a closed port).
type sshServer struct {
	addr    string
	hostKey ssh.Signer
	user    ssh.Signer // the client key it accepts

	authTries atomic.Int32
	conns     atomic.Int32 // connections that logged in
	live      atomic.Int32 // of those, still open

	mu      sync.Mutex
	targets []string
	open    []net.Conn // raw conns, for cutting them all
}

func newSSHServer(t *testing.T) *sshServer {
	t.Helper()
	s := &sshServer{hostKey: newSigner(t), user: newSigner(t)}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		s.authTries.Add(1)
		if bytes.Equal(key.Marshal(), s.user.PublicKey().Marshal()) {
			return nil, nil
		}
		return nil, errors.New("unknown key")
	}, PasswordCallback: func(ssh.ConnMetadata, []byte) (*ssh.Permissions, error) {
		s.authTries.Add(1)
		return nil, errors.New("no passwords here")
	}}
	cfg.AddHostKey(s.hostKey)
	s.addr = fakeServer(t, func(c net.Conn) {
		s.mu.Lock()
		s.open = append(s.open, c)
		s.mu.Unlock()
		sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
		if err != nil {
			return
		}
		s.conns.Add(1)
		s.live.Add(1)
		defer s.live.Add(-1)
		go ssh.DiscardRequests(reqs)
		var wg sync.WaitGroup
		defer wg.Wait()
		for nc := range chans {
			if nc.ChannelType() == "session" {
				ch, creqs, err := nc.Accept()
				if err == nil {
					go ssh.DiscardRequests(creqs)
					ch.Close()
				}
				continue
			}
			var p struct {
				Host       string
				Port       uint32
				OriginHost string
				OriginPort uint32
			}
			ssh.Unmarshal(nc.ExtraData(), &p)
			s.mu.Lock()
			s.targets = append(s.targets, fmt.Sprintf("%s:%d", p.Host, p.Port))
			s.mu.Unlock()
			if p.Host == "refused.test" {
				nc.Reject(ssh.ConnectionFailed, "Connection refused")
				continue
			}
			ch, creqs, err := nc.Accept()
			if err != nil {
				continue
			}
			go ssh.DiscardRequests(creqs)
			wg.Go(func() {
				io.Copy(ch, ch)
				ch.CloseWrite()
				ch.Close()
			})
		}
		sc.Close()
	})
	return s
}

func newSigner(t *testing.T) ssh.Signer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// cut closes every connection the server has, as a server that dies.
func (s *sshServer) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.open {
		c.Close()
	}
	s.open = nil
}

func (s *sshServer) seenTargets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.targets...)
}

// hop is an SSH hop to s, pinned to its key, closed at the end of the test.
func (s *sshServer) hop(t *testing.T) *SSH {
	h := &SSH{Address: s.addr, User: "alice", Signers: []ssh.Signer{s.user}, HostKey: ssh.FingerprintSHA256(s.hostKey.PublicKey())}
	t.Cleanup(func() { h.Close() })
	return h
}

// echoThrough sends a line through conn and expects it back.
func echoThrough(t *testing.T, conn net.Conn, line string) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, line); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(line))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != line {
		t.Fatalf("echo: got %q, %v; want %q", got, err, line)
	}
	conn.SetDeadline(time.Time{})
}

// TestSSHStreamsShareOneConnection: parallel streams through an SSH hop
// use one SSH connection, each a channel whose target is sent as a name.
func TestSSHStreamsShareOneConnection(t *testing.T) {
	s := newSSHServer(t)
	c := &Chain{Hops: []Hop{s.hop(t)}}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			conn, err := c.DialContext(context.Background(), "tcp", fmt.Sprintf("name%d.example:80", i))
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			echoThrough(t, conn, strings.Repeat(fmt.Sprint(i), 1000))
		})
	}
	wg.Wait()
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d SSH connections for 20 streams, want 1", n)
	}
	if got := s.seenTargets(); len(got) != 20 || !strings.HasPrefix(got[0], "name") {
		t.Errorf("targets %v: want 20 names as sent", got)
	}
}

// TestSSHHostKeyRefusals: a wrong pin, a host known_hosts does not list
// and a changed key each refuse the hop during the key exchange: the
// server sees no auth attempt and no channel, and the error shows the
// offered key and how to pin it.
func TestSSHHostKeyRefusals(t *testing.T) {
	s := newSSHServer(t)
	offered := ssh.FingerprintSHA256(s.hostKey.PublicKey())
	other := newSigner(t).PublicKey()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	host, port, _ := net.SplitHostPort(s.addr)
	otherHost := knownhosts.Line([]string{"[" + host + "]:1"}, s.hostKey.PublicKey()) + "\n" // the key, for another port
	changed := knownhosts.Line([]string{knownhosts.Normalize(s.addr)}, other) + "\n"
	hashed := knownhosts.HashHostname(knownhosts.Normalize(s.addr)) + " " + string(ssh.MarshalAuthorizedKey(s.hostKey.PublicKey()))
	for _, tt := range []struct {
		name string
		hop  func(h *SSH)
		want string // in the error; "" means the hop works
	}{
		{"wrong pin", func(h *SSH) { h.HostKey = ssh.FingerprintSHA256(other) }, "not the pinned"},
		{"unknown host", func(h *SSH) { h.HostKey, h.KnownHosts = "", write("unknown", otherHost) }, "is unknown"},
		{"changed key", func(h *SSH) { h.HostKey, h.KnownHosts = "", write("changed", changed) }, "HOST KEY CHANGED"},
		{"hashed entry", func(h *SSH) { h.HostKey, h.KnownHosts = "", write("hashed", hashed) }, ""},
		{"right pin", func(*SSH) {}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tries, chans := s.authTries.Load(), len(s.seenTargets())
			h := s.hop(t)
			tt.hop(h)
			conn, err := (&Chain{Hops: []Hop{h}}).DialContext(context.Background(), "tcp", "dest.example:443")
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				conn.Close()
				return
			}
			if err == nil {
				conn.Close()
				t.Fatal("dial through a hop with an unverified host key succeeded")
			}
			if !errors.Is(err, ErrHostKey) || !strings.Contains(err.Error(), tt.want) ||
				!strings.Contains(err.Error(), "hostkey="+offered) {
				t.Errorf("err = %v; want ErrHostKey saying %q and how to pin %s", err, tt.want, offered)
			}
			if tt.name == "unknown host" && !strings.Contains(err.Error(), "ssh-keyscan -p "+port+" "+host) {
				t.Errorf("err = %v: want the ssh-keyscan line", err)
			}
			if s.authTries.Load() != tries || len(s.seenTargets()) != chans {
				t.Errorf("the server saw an auth attempt or a channel before the host key was verified")
			}
		})
	}
}

// TestSSHRefusedTargetIsAReply: the server's refusal to connect onward
// is a ReplyError that blames no hop, as a SOCKS refusal.
func TestSSHRefusedTargetIsAReply(t *testing.T) {
	s := newSSHServer(t)
	h := s.hop(t)
	health := &Health{}
	_, err := (&Chain{Hops: []Hop{h}, Health: health}).DialContext(context.Background(), "tcp", "refused.test:80")
	re, ok := errors.AsType[*ReplyError](err)
	if !ok || re.Code != 0x05 {
		t.Fatalf("err = %v, want ReplyError 0x05", err)
	}
	if he, ok := errors.AsType[*HopError](err); !ok || he.Index != 0 {
		t.Errorf("err = %v, want HopError for hop 1", err)
	}
	if !health.Alive(h) {
		t.Error("the hop was blamed for a refused destination")
	}
}

// TestSSHReconnectsAfterBreak: when the server drops the connection, its
// streams end at once and the next stream makes a new connection.
func TestSSHReconnectsAfterBreak(t *testing.T) {
	s := newSSHServer(t)
	c := &Chain{Hops: []Hop{s.hop(t)}}
	conn, err := c.DialContext(context.Background(), "tcp", "a.example:80")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echoThrough(t, conn, "before")
	s.cut()
	conn.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after the server died: %v, want the stream ended", err)
	}
	conn2, err := c.DialContext(context.Background(), "tcp", "a.example:80")
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	echoThrough(t, conn2, "after")
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (one made again)", n)
	}
	// Dialled at once after the break, before the hop has seen it: the
	// stream is tried again on a new connection.
	s.cut()
	conn3, err := c.DialContext(context.Background(), "tcp", "a.example:80")
	if err != nil {
		t.Fatalf("a dial right after the break: %v", err)
	}
	defer conn3.Close()
	echoThrough(t, conn3, "at once")
}

// TestSSHCloseDrains: closing the hop (a reload) leaves a live stream
// working, and closes its connection when the stream ends.
func TestSSHCloseDrains(t *testing.T) {
	s := newSSHServer(t)
	h := s.hop(t)
	c := &Chain{Hops: []Hop{h}}
	conn, err := c.DialContext(context.Background(), "tcp", "a.example:80")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	echoThrough(t, conn, "still works")
	if _, err := c.DialContext(context.Background(), "tcp", "a.example:80"); err == nil {
		t.Error("a dial through a closed hop succeeded")
	}
	conn.Close()
	for deadline := time.Now().Add(5 * time.Second); s.live.Load() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the connection stayed open after its last stream closed")
		}
	}
}

// TestSSHIsolation: an SSH hop keeps a connection per isolation key.
func TestSSHIsolation(t *testing.T) {
	for _, tt := range []struct {
		isolate Isolation
		origins []Origin
		dests   []string
		want    int32
	}{
		{IsolateNone, []Origin{{"a", ""}, {"b", "u"}}, []string{"x:1", "y:1"}, 1},
		{IsolateListener, []Origin{{"a", ""}, {"a", "u"}, {"b", ""}}, []string{"x:1", "y:1", "x:1"}, 2},
		{IsolateUser, []Origin{{"a", "u"}, {"b", "u"}, {"a", "v"}}, []string{"x:1", "y:1", "x:1"}, 2},
		{IsolateDestination, []Origin{{"a", ""}, {"b", ""}, {"a", ""}}, []string{"x:1", "x:2", "y:1"}, 2},
		{IsolateConnection, []Origin{{"a", ""}, {"a", ""}, {"a", ""}}, []string{"x:1", "x:1", "x:1"}, 3},
	} {
		t.Run(tt.isolate.String(), func(t *testing.T) {
			s := newSSHServer(t)
			h := s.hop(t)
			h.Isolate = tt.isolate
			c := &Chain{Hops: []Hop{h}}
			for i, o := range tt.origins {
				conn, err := c.DialContext(WithOrigin(context.Background(), o), "tcp", tt.dests[i])
				if err != nil {
					t.Fatal(err)
				}
				echoThrough(t, conn, "x")
				defer conn.Close()
			}
			if n := s.conns.Load(); n != tt.want {
				t.Errorf("%d SSH connections, want %d", n, tt.want)
			}
		})
	}
}

// TestSSHPasswordNeverShown: a refused password appears in no error.
func TestSSHPasswordNeverShown(t *testing.T) {
	s := newSSHServer(t)
	const secret = "hunter2-Secret"
	h := s.hop(t)
	h.Signers, h.Password = nil, secret
	_, err := (&Chain{Hops: []Hop{h}}).DialContext(context.Background(), "tcp", "a.example:80")
	if !errors.Is(err, ErrHopAuth) || strings.Contains(err.Error(), secret) {
		t.Fatalf("err = %v: want ErrHopAuth without the password", err)
	}
	_, err = ParseHop("ssh://alice:" + secret + "@127.0.0.1:22?hostkey=SHA256:bad")
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("ParseHop err = %v: want an error without the password", err)
	}
	r := (&Chain{Hops: []Hop{h}}).Probe(context.Background())
	if r[0].Auth != "refused" || strings.Contains(fmt.Sprint(r), secret) {
		t.Fatalf("probe %+v: want auth refused, without the password", r)
	}
}

// TestSSHProbe: check's probe of an SSH hop verifies the key, logs in,
// opens a session channel (nothing beyond the server) and reports each.
func TestSSHProbe(t *testing.T) {
	s := newSSHServer(t)
	r := (&Chain{Hops: []Hop{s.hop(t)}}).Probe(context.Background())
	want := ssh.FingerprintSHA256(s.hostKey.PublicKey())
	if len(r) != 1 || !r[0].Reachable || r[0].Auth != "ok" || r[0].AuthMethod != "publickey" || r[0].HostKey != want ||
		r[0].ChannelOpen <= 0 || r[0].Encrypted != "yes (host key)" {
		t.Fatalf("probe = %+v", r)
	}
	if len(s.seenTargets()) != 0 {
		t.Errorf("the probe opened a stream to %v", s.seenTargets())
	}
}

// TestSSHBetweenSOCKS5Hops: an SSH hop in the middle is reached through
// the hop before it, and the hop after it through its channel; a failure
// of the hop after is blamed on it, with its index.
func TestSSHBetweenSOCKS5Hops(t *testing.T) {
	s := newSSHServer(t)
	before := &recordingSOCKS5{t: t, forward: s.addr}
	first := before.start()
	// After the SSH hop: the server echoes the SOCKS5 handshake back,
	// which is no SOCKS5 reply.
	c := &Chain{Hops: []Hop{&SOCKS5{Address: first}, s.hop(t), &SOCKS5{Address: "next.example:1080"}}}
	_, err := c.DialContext(context.Background(), "tcp", "dest.example:80")
	he, ok := errors.AsType[*HopError](err)
	if !ok || he.Index != 2 || !errors.Is(err, ErrProtocol) {
		t.Fatalf("err = %v, want a protocol error of hop 3", err)
	}
	if got := s.seenTargets(); len(got) != 1 || got[0] != "next.example:1080" {
		t.Errorf("SSH targets %v, want the next hop's name", got)
	}
	if got := before.seenTargets(); len(got) != 1 || got[0] != s.addr {
		t.Errorf("first hop's targets %v, want the SSH server", got)
	}
}

// recordingSOCKS5 is a SOCKS5 server that takes no auth or any
// user/password, records both and the targets, and connects every target
// to forward (or answers success and echoes when forward is empty).
type recordingSOCKS5 struct {
	t       *testing.T
	forward string

	mu      sync.Mutex
	creds   []string
	targets []string
}

func (r *recordingSOCKS5) seenCreds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.creds...)
}

func (r *recordingSOCKS5) seenTargets() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.targets...)
}

func (r *recordingSOCKS5) start() string {
	return fakeServer(r.t, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		var b [2]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return
		}
		methods := make([]byte, b[1])
		io.ReadFull(c, methods)
		cred := "none"
		if bytes.IndexByte(methods, 2) >= 0 {
			c.Write([]byte{5, 2})
			var v, n [1]byte
			io.ReadFull(c, v[:])
			io.ReadFull(c, n[:])
			user := make([]byte, n[0])
			io.ReadFull(c, user)
			io.ReadFull(c, n[:])
			pass := make([]byte, n[0])
			io.ReadFull(c, pass)
			cred = string(user) + ":" + string(pass)
			c.Write([]byte{1, 0})
		} else {
			c.Write([]byte{5, 0})
		}
		var req [4]byte
		if _, err := io.ReadFull(c, req[:]); err != nil {
			return
		}
		var host string
		switch req[3] {
		case 1:
			ip := make([]byte, 4)
			io.ReadFull(c, ip)
			host = net.IP(ip).String()
		case 3:
			var n [1]byte
			io.ReadFull(c, n[:])
			name := make([]byte, n[0])
			io.ReadFull(c, name)
			host = string(name)
		}
		var port [2]byte
		io.ReadFull(c, port[:])
		r.mu.Lock()
		r.creds = append(r.creds, cred)
		r.targets = append(r.targets, net.JoinHostPort(host, fmt.Sprint(binary.BigEndian.Uint16(port[:]))))
		r.mu.Unlock()
		c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
		c.SetDeadline(time.Time{})
		if r.forward == "" {
			io.Copy(c, c)
			return
		}
		up, err := net.Dial("tcp", r.forward)
		if err != nil {
			return
		}
		defer up.Close()
		done := make(chan struct{})
		go func() {
			io.Copy(up, c)
			up.Close()
			close(done)
		}()
		io.Copy(c, up)
		c.Close()
		<-done
	})
}

// TestSOCKS5IsolationCredentials: a SOCKS5 hop with isolate= sends one
// user/password per isolation key (what Tor's IsolateSOCKSAuth tells
// apart), the same ones again for the same key, and none of the
// listener, user or destination in them.
func TestSOCKS5IsolationCredentials(t *testing.T) {
	for _, tt := range []struct {
		isolate Isolation
		origins []Origin
		dests   []string
		same    [][2]int // dials that must share credentials
		apart   [][2]int // dials that must not
	}{
		{IsolateListener, []Origin{{"a", "u"}, {"a", "v"}, {"b", "u"}}, []string{"x:1", "y:1", "x:1"}, [][2]int{{0, 1}}, [][2]int{{0, 2}}},
		{IsolateUser, []Origin{{"a", "u"}, {"b", "u"}, {"a", "v"}}, []string{"x:1", "y:1", "x:1"}, [][2]int{{0, 1}}, [][2]int{{0, 2}}},
		{IsolateDestination, []Origin{{"a", "u"}, {"b", "v"}, {"a", "u"}}, []string{"x.example:1", "x.example:2", "y.example:1"}, [][2]int{{0, 1}}, [][2]int{{0, 2}}},
		{IsolateConnection, []Origin{{"a", "u"}, {"a", "u"}}, []string{"x:1", "x:1"}, nil, [][2]int{{0, 1}}},
	} {
		t.Run(tt.isolate.String(), func(t *testing.T) {
			srv := &recordingSOCKS5{t: t}
			addr := srv.start()
			h, err := ParseHop("socks5://" + addr + "?isolate=" + tt.isolate.String())
			if err != nil {
				t.Fatal(err)
			}
			c := &Chain{Hops: []Hop{h}}
			for i, o := range tt.origins {
				conn, err := c.DialContext(WithOrigin(context.Background(), o), "tcp", tt.dests[i])
				if err != nil {
					t.Fatal(err)
				}
				echoThrough(t, conn, "x")
				conn.Close()
			}
			creds := srv.seenCreds()
			for _, cr := range creds {
				if !strings.HasPrefix(cr, "vc-") || strings.ContainsAny(cr, "abuvxy.") && strings.Contains(cr, "example") {
					t.Errorf("credentials %q: want an opaque vc-… name", cr)
				}
			}
			for _, p := range tt.same {
				if creds[p[0]] != creds[p[1]] {
					t.Errorf("dials %d and %d sent %q and %q, want the same", p[0], p[1], creds[p[0]], creds[p[1]])
				}
			}
			for _, p := range tt.apart {
				if creds[p[0]] == creds[p[1]] {
					t.Errorf("dials %d and %d both sent %q, want them apart", p[0], p[1], creds[p[0]])
				}
			}
		})
	}
	if _, err := ParseHop("socks5://u:p@127.0.0.1:1?isolate=user"); err == nil {
		t.Error("isolate= with a user and password of its own was accepted")
	}
}
