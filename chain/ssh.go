package chain

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/veilchain/veilchain/internal/conns"
)

// SSH is a hop that is an SSH server (ssh://user@host): each stream
// through it is a direct-tcpip channel, the next address sent as a name,
// so at the exit the SSH server's side resolves it. Streams share one SSH
// connection per isolation key, kept while streams use it and for
// IdleTimeout after; keepalives find a dead server, and a broken
// connection is dropped so the next stream makes a new one.
//
// The server's host key is always verified, by HostKey or KnownHosts,
// during the key exchange: before our user name, a credential or a
// destination is sent.
type SSH struct {
	Address string // host:port of the SSH server
	User    string
	// Password, if set, is offered after the keys (discouraged: a key or
	// the agent is better). It never appears in an error or a log.
	Password string
	// Signers are the keys from identity=FILE; AgentSocket, if set, is an
	// ssh-agent's socket (SSH_AUTH_SOCK) whose keys are offered after them.
	Signers     []ssh.Signer
	AgentSocket string
	// HostKey pins the server's key by its fingerprint ("SHA256:...", as
	// ssh-keygen -l prints it); without it, KnownHosts is the
	// known_hosts file the key must be in.
	HostKey    string
	KnownHosts string
	// Isolate gives each isolation key its own SSH connection.
	Isolate Isolation
	// Timeout bounds the handshake and each channel open (0: the chain's).
	Timeout time.Duration
	// KeepAlive is how often an idle-looking connection is asked for a
	// sign of life, and how long the answer may take (default 15 s).
	KeepAlive time.Duration
	// IdleTimeout closes a connection no stream has used for that long
	// (default 5 min).
	IdleTimeout time.Duration

	mu     sync.Mutex
	conns  map[string]*sshConn
	closed bool
}

// sshConn is one SSH connection of a hop, and the streams using it.
type sshConn struct {
	key     string
	ready   chan struct{} // closed when the connection is made, or failed (err)
	client  *ssh.Client
	err     error
	alive   context.Context // ends when the connection does
	ended   context.CancelFunc
	streams int         // streams using or about to use it (hop's mu)
	idle    *time.Timer // closes it when no stream used it for IdleTimeout (hop's mu)
}

// Addr returns the SSH server's host:port.
func (h *SSH) Addr() string { return h.Address }

// HandshakeTimeout is this hop's own handshake timeout, if any.
func (h *SSH) HandshakeTimeout() time.Duration { return h.Timeout }

// ErrHostKey marks an SSH server whose host key is not the one we know:
// nothing but the key exchange has happened.
var ErrHostKey = errors.New("SSH host key not verified")

// HostKeyError is an SSH server whose key is unknown, or not the one
// pinned or on file. It says which key was offered and how to pin it.
type HostKeyError struct {
	Addr    string // the server's host:port
	Offered string // fingerprint of the key it offered
	Type    string // its type, e.g. ssh-ed25519
	Pinned  string // the hostkey= fingerprint, if one was given
	File    string // else the known_hosts file
	Known   []knownhosts.KnownKey
}

func (e *HostKeyError) Error() string {
	pin := fmt.Sprintf("?hostkey=%s", e.Offered)
	check := "(compare with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the server)"
	switch {
	case e.Pinned != "":
		return fmt.Sprintf("host key of %s is %s (%s), not the pinned %s: the key changed, or this is not that server; if it did change %s, pin the new one with %s",
			e.Addr, e.Offered, e.Type, e.Pinned, check, pin)
	case len(e.Known) == 0:
		host, port, _ := net.SplitHostPort(e.Addr)
		return fmt.Sprintf("host key of %s is unknown: it offered %s (%s), which %s does not list; if that is the server's key %s, pin it with %s, or add it with `ssh-keyscan -p %s %s >> %s`",
			e.Addr, e.Offered, e.Type, e.File, check, pin, port, host, e.File)
	}
	var known []string
	for _, k := range e.Known {
		known = append(known, fmt.Sprintf("%s (%s:%d)", ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
	}
	return fmt.Sprintf("HOST KEY CHANGED for %s: it offered %s (%s), but known_hosts has %s: someone may be in the middle, or the server's key was replaced; if it was %s, replace that line, or pin the new key with %s",
		e.Addr, e.Offered, e.Type, strings.Join(known, ", "), check, pin)
}

// Is makes errors.Is(err, ErrHostKey) true.
func (e *HostKeyError) Is(target error) bool { return target == ErrHostKey }

// ParseHostKey checks a host key fingerprint as ssh-keygen -l prints it
// (SHA256: and 43 characters of unpadded base64) and returns it in that
// form. A '+' that a URL query turned into a space is put back.
func ParseHostKey(s string) (string, error) {
	b64, ok := strings.CutPrefix(s, "SHA256:")
	sum, err := base64.RawStdEncoding.DecodeString(strings.ReplaceAll(b64, " ", "+"))
	if !ok || err != nil || len(sum) != 32 {
		return "", fmt.Errorf("hostkey %q: want SHA256:<43 base64 characters>, as `ssh-keygen -lf KEY.pub` prints it", s)
	}
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum), nil
}

// LoadIdentity reads an unencrypted private key file (identity=FILE). A
// key protected by a passphrase is refused: nothing here may ask for one.
func LoadIdentity(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(expandHome(path))
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if _, ok := errors.AsType[*ssh.PassphraseMissingError](err); ok {
		return nil, fmt.Errorf("identity %s is protected by a passphrase, which veilchain does not ask for: load it into your ssh-agent (ssh-add %s) and leave identity= out, or use a key without one", path, path)
	}
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	return s, nil
}

// DefaultKnownHosts is ~/.ssh/known_hosts.
func DefaultKnownHosts() string { return filepath.Join("~", ".ssh", "known_hosts") }

func expandHome(path string) string {
	if rest, ok := strings.CutPrefix(path, "~"+string(filepath.Separator)); ok || path == "~" {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return path
}

// Connect runs an SSH connection of its own on conn and opens one channel
// to addr; closing the stream closes the connection. (A Chain uses
// DialVia, which shares connections.)
func (h *SSH) Connect(ctx context.Context, conn net.Conn, addr string) (net.Conn, error) {
	client, _, err := h.handshake(ctx, conn)
	if err != nil {
		return nil, err
	}
	ch, err := openStream(ctx, client, addr)
	if err != nil {
		client.Close()
		return nil, err
	}
	return &sshStream{Conn: ch, release: func() { client.Close() }}, nil
}

// DialVia opens a stream to addr over the SSH connection for ctx's
// isolation key, making one through reach if there is none. Concurrent
// streams wait for the one connection being made. A connection found
// broken is dropped and the stream tried once more on a new one.
func (h *SSH) DialVia(ctx context.Context, timeout time.Duration, reach func(context.Context) (net.Conn, error), addr string) (net.Conn, error) {
	key, shared := isolationKey(ctx, h.Isolate)
	if !shared {
		conn, err := reach(ctx)
		if err != nil {
			return nil, err
		}
		hctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		s, err := h.Connect(hctx, conn, addr)
		if err != nil {
			conn.Close()
		}
		return s, err
	}
	for attempt := 0; ; attempt++ {
		c, leader, err := h.acquire(key)
		if err != nil {
			return nil, err
		}
		if leader {
			h.connect(ctx, timeout, c, reach)
		} else {
			select {
			case <-c.ready:
			case <-ctx.Done():
				h.release(c)
				return nil, ctx.Err()
			}
		}
		if c.err != nil {
			h.release(c)
			if !leader && attempt == 0 && errors.Is(c.err, context.Canceled) && ctx.Err() == nil {
				continue // the dial that was making it gave up; this one makes its own
			}
			return nil, c.err
		}
		// A channel opened just as its connection ends may never be
		// answered: the end of the connection ends the wait too.
		sctx, cancel := context.WithTimeout(ctx, timeout)
		stop := context.AfterFunc(c.alive, cancel)
		ch, err := openStream(sctx, c.client, addr)
		timedOut := sctx.Err() != nil && c.alive.Err() == nil
		stop()
		cancel()
		if err == nil {
			return &sshStream{Conn: ch, release: func() { h.release(c) }}, nil
		}
		h.release(c)
		if _, ok := errors.AsType[*ReplyError](err); ok || timedOut {
			return nil, err // the server answered, or the time is up
		}
		h.drop(c) // the connection broke
		if leader || attempt > 0 {
			return nil, fmt.Errorf("SSH connection: %w", err)
		}
	}
}

// acquire returns the connection for key, counting one more stream on it;
// leader says the caller must make it (h.connect).
func (h *SSH) acquire(key string) (c *sshConn, leader bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false, errors.New("SSH hop closed (the config was reloaded)")
	}
	if c = h.conns[key]; c != nil {
		c.streams++
		if c.idle != nil {
			c.idle.Stop()
			c.idle = nil
		}
		return c, false, nil
	}
	c = &sshConn{key: key, ready: make(chan struct{}), streams: 1}
	if h.conns == nil {
		h.conns = map[string]*sshConn{}
	}
	h.conns[key] = c
	return c, true, nil
}

// connect makes c's SSH connection through reach, and then watches it:
// keepalives, and dropping it once it ends.
func (h *SSH) connect(ctx context.Context, timeout time.Duration, c *sshConn, reach func(context.Context) (net.Conn, error)) {
	defer close(c.ready)
	var client *ssh.Client
	conn, err := reach(ctx)
	if err == nil {
		hctx, cancel := context.WithTimeout(ctx, timeout)
		client, _, err = h.handshake(hctx, conn)
		cancel()
		if err != nil {
			conn.Close()
		}
	}
	h.mu.Lock()
	c.client, c.err = client, err
	c.alive, c.ended = context.WithCancel(context.Background())
	h.mu.Unlock()
	if err != nil {
		c.ended()
		h.drop(c)
		return
	}
	go h.keepAlive(c)
}

// keepAlive asks the server for a sign of life every KeepAlive, and
// closes the connection when none comes within KeepAlive; it ends, and
// the connection is dropped, when the connection ends.
func (h *SSH) keepAlive(c *sshConn) {
	every := h.KeepAlive
	if every <= 0 {
		every = 15 * time.Second
	}
	go func() { // owned by keepAlive, ends with the connection
		c.client.Wait()
		c.ended()
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.alive.Done():
			h.drop(c)
			return
		case <-t.C:
		}
		cut := time.AfterFunc(every, func() { c.client.Close() })
		_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
		cut.Stop()
		if err != nil {
			c.client.Close()
		}
	}
}

// release counts one stream less on c; the last one starts its idle
// timer, or closes it if it was dropped or the hop closed.
func (h *SSH) release(c *sshConn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c.streams--
	if c.streams > 0 {
		return
	}
	if h.conns[c.key] != c {
		if c.client != nil {
			c.client.Close()
		}
		return
	}
	if c.client == nil {
		return // still being made, or failed (and dropped)
	}
	idle := h.IdleTimeout
	if idle <= 0 {
		idle = 5 * time.Minute
	}
	c.idle = time.AfterFunc(idle, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if c.streams == 0 && h.conns[c.key] == c {
			delete(h.conns, c.key)
			c.client.Close()
		}
	})
}

// drop forgets c, so the next stream makes a new connection, and closes
// it: its streams end.
func (h *SSH) drop(c *sshConn) {
	h.mu.Lock()
	if h.conns[c.key] == c {
		delete(h.conns, c.key)
	}
	if c.idle != nil {
		c.idle.Stop()
	}
	client := c.client
	h.mu.Unlock()
	if client != nil {
		client.Close()
	}
}

// Close closes the connections no stream uses now, and each of the others
// when its last stream ends; later dials through the hop fail.
func (h *SSH) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for key, c := range h.conns {
		delete(h.conns, key)
		if c.idle != nil {
			c.idle.Stop()
		}
		if c.streams == 0 && c.client != nil {
			c.client.Close()
		}
	}
	return nil
}

// probe runs a handshake of its own on conn (the host key check and the
// auth) and opens a session channel, which reaches nothing beyond the
// server, timing it; then it closes all.
func (h *SSH) probe(ctx context.Context, conn net.Conn, timeout time.Duration, r *HopReport) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client, got, err := h.handshake(ctx, conn)
	r.HostKey = got.HostKey
	if err != nil {
		return err
	}
	defer client.Close()
	r.Auth, r.AuthMethod = "ok", got.Method
	start := time.Now()
	stop := context.AfterFunc(ctx, func() { client.Close() })
	defer stop()
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		return fmt.Errorf("opening a channel: %w", err)
	}
	r.ChannelOpen = time.Since(start)
	go ssh.DiscardRequests(reqs) // ends when the channel closes
	return ch.Close()
}

// sshAuth is how one handshake went: the key the server showed and the
// auth method it accepted.
type sshAuth struct {
	HostKey string
	Method  string
}

// handshake runs SSH's key exchange and auth on conn, under ctx. The host
// key is verified in the key exchange, before anything of ours is sent.
func (h *SSH) handshake(ctx context.Context, conn net.Conn) (*ssh.Client, sshAuth, error) {
	var got sshAuth
	check, algos, err := h.hostKeyCheck()
	if err != nil {
		return nil, got, err
	}
	var keyErr *HostKeyError
	cfg := &ssh.ClientConfig{
		User:              h.User,
		HostKeyAlgorithms: algos,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got.HostKey = ssh.FingerprintSHA256(key)
			if keyErr = check(key); keyErr != nil {
				return keyErr
			}
			return nil
		},
	}
	var signers []ssh.Signer
	signers = append(signers, h.Signers...)
	if h.AgentSocket != "" {
		if ac, err := (&net.Dialer{}).DialContext(ctx, "unix", h.AgentSocket); err == nil {
			defer ac.Close()
			if s, err := agent.NewClient(ac).Signers(); err == nil {
				signers = append(signers, s...)
			}
		}
	}
	if len(signers) > 0 {
		cfg.Auth = append(cfg.Auth, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			got.Method = "publickey"
			return signers, nil
		}))
	}
	if h.Password != "" {
		cfg.Auth = append(cfg.Auth, ssh.PasswordCallback(func() (string, error) {
			got.Method = "password"
			return h.Password, nil
		}))
	}
	// The context reaches the handshake as a deadline on conn.
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		conn.SetDeadline(time.Unix(1, 0))
		close(interrupted)
	})
	sc, chans, reqs, err := ssh.NewClientConn(conn, h.Address, cfg)
	if !stop() {
		<-interrupted
	}
	switch {
	case keyErr != nil:
		return nil, got, keyErr
	case err != nil && ctx.Err() != nil:
		return nil, got, fmt.Errorf("SSH handshake: %w", ctx.Err())
	case err != nil && strings.Contains(err.Error(), "unable to authenticate"):
		// x/crypto's only sign of a refused auth is its text, read here
		// where it is born.
		method := "no key or password was offered"
		if len(cfg.Auth) > 0 {
			method = "the server refused every key and password offered"
		}
		return nil, got, fmt.Errorf("%w: user %q: %s", ErrHopAuth, h.User, method)
	case err != nil:
		return nil, got, fmt.Errorf("SSH handshake: %w", err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		sc.Close()
		return nil, got, err
	}
	return ssh.NewClient(sc, chans, reqs), got, nil
}

// hostKeyCheck returns the check of a server's host key, and the key
// types to ask for (those known_hosts lists for the server, so that a
// server with several keys shows one we know).
func (h *SSH) hostKeyCheck() (func(ssh.PublicKey) *HostKeyError, []string, error) {
	if h.HostKey != "" {
		return func(key ssh.PublicKey) *HostKeyError {
			if fp := ssh.FingerprintSHA256(key); fp != h.HostKey {
				return &HostKeyError{Addr: h.Address, Offered: fp, Type: key.Type(), Pinned: h.HostKey}
			}
			return nil
		}, nil, nil
	}
	file := h.KnownHosts
	if file == "" {
		file = DefaultKnownHosts()
	}
	kh, err := knownhosts.New(expandHome(file))
	if err != nil {
		return nil, nil, fmt.Errorf("known_hosts: %w (or pin the server's key with hostkey=SHA256:...)", err)
	}
	// Ask with a key nobody has: the error lists the keys on file.
	remote := &net.TCPAddr{IP: net.IPv4zero}
	var algos []string
	if probe, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize))); err == nil {
		if ke, ok := errors.AsType[*knownhosts.KeyError](kh(h.Address, remote, probe)); ok {
			for _, k := range ke.Want {
				algos = append(algos, algorithmsFor(k.Key.Type())...)
			}
		}
	}
	return func(key ssh.PublicKey) *HostKeyError {
		err := kh(h.Address, remote, key)
		if err == nil {
			return nil
		}
		e := &HostKeyError{Addr: h.Address, Offered: ssh.FingerprintSHA256(key), Type: key.Type(), File: file}
		if ke, ok := errors.AsType[*knownhosts.KeyError](err); ok {
			e.Known = ke.Want
		}
		return e
	}, algos, nil
}

// algorithmsFor lists the host key algorithms that show a key of type t.
func algorithmsFor(t string) []string {
	if t == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{t}
}

// openStream opens a direct-tcpip channel to addr, sent as a name. The
// server's refusal is a *ReplyError, as a SOCKS hop's would be.
func openStream(ctx context.Context, client *ssh.Client, addr string) (net.Conn, error) {
	ch, err := client.DialContext(ctx, "tcp", addr)
	if err == nil {
		return ch, nil
	}
	oe, ok := errors.AsType[*ssh.OpenChannelError](err)
	if !ok {
		return nil, err
	}
	code := byte(0x01)
	switch {
	case oe.Reason == ssh.Prohibited:
		code = 0x02
	case oe.Reason == ssh.ConnectionFailed && strings.Contains(strings.ToLower(oe.Message), "refused"):
		code = 0x05 // the server's own words are all the protocol gives
	case oe.Reason == ssh.ConnectionFailed:
		code = 0x04
	}
	return nil, fmt.Errorf("the SSH server says %q: %w", oe.Message, &ReplyError{Code: code})
}

// sshStream is a channel as a net.Conn: Close also lets go of its SSH
// connection, and deadlines, which channels lack, end the stream when
// they pass (enough for handshakes and idle timeouts).
type sshStream struct {
	net.Conn
	release func()
	once    sync.Once

	mu      sync.Mutex
	readDL  time.Time
	writeDL time.Time
	timer   *time.Timer
	expired bool
}

func (s *sshStream) Close() error {
	err := s.Conn.Close()
	s.once.Do(func() {
		s.mu.Lock()
		if s.timer != nil {
			s.timer.Stop()
		}
		s.mu.Unlock()
		s.release()
	})
	return err
}

// CloseWrite sends EOF on the channel.
func (s *sshStream) CloseWrite() error { return conns.CloseWrite(s.Conn) }

func (s *sshStream) Read(b []byte) (int, error) {
	n, err := s.Conn.Read(b)
	if err != nil && s.isExpired() {
		err = os.ErrDeadlineExceeded
	}
	return n, err
}

func (s *sshStream) Write(b []byte) (int, error) {
	if s.isExpired() {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := s.Conn.Write(b)
	if err != nil && s.isExpired() {
		err = os.ErrDeadlineExceeded
	}
	return n, err
}

func (s *sshStream) isExpired() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expired
}

func (s *sshStream) SetDeadline(t time.Time) error { return s.setDeadlines(&t, &t) }

func (s *sshStream) SetReadDeadline(t time.Time) error { return s.setDeadlines(&t, nil) }

func (s *sshStream) SetWriteDeadline(t time.Time) error { return s.setDeadlines(nil, &t) }

// setDeadlines arms one timer for the earlier deadline; when it fires the
// channel is closed, and reads and writes say the deadline passed.
func (s *sshStream) setDeadlines(read, write *time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if read != nil {
		s.readDL = *read
	}
	if write != nil {
		s.writeDL = *write
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.expired {
		return nil
	}
	at := s.readDL
	if at.IsZero() || !s.writeDL.IsZero() && s.writeDL.Before(at) {
		at = s.writeDL
	}
	if at.IsZero() {
		return nil
	}
	s.timer = time.AfterFunc(time.Until(at), func() {
		s.mu.Lock()
		s.expired = true
		s.mu.Unlock()
		s.Conn.Close()
	})
	return nil
}
