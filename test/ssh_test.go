package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/internal/testnet"
)

// sshChain is a chain of hop URLs that records every address it dials
// itself, closed at the end of the test.
func sshChain(t *testing.T, dialed *[]string, hops ...string) *chain.Chain {
	t.Helper()
	var mu sync.Mutex
	c := &chain.Chain{HandshakeTimeout: 10 * time.Second, Forward: chain.DialerFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		*dialed = append(*dialed, addr)
		mu.Unlock()
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	})}
	for _, u := range hops {
		h, err := chain.ParseHop(u)
		if err != nil {
			t.Fatalf("ParseHop(%q): %v", u, err)
		}
		c.Hops = append(c.Hops, h)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSSHHops: OpenSSH's sshd as the only hop, as the first hop before
// our serve, and as the exit behind it. The destination is sent as a
// name and reached by the hop after (or the SSH server itself), and this
// side dials nothing but the first hop.
func TestSSHHops(t *testing.T) {
	d := startSSHD(t)
	dest := newDestination(t)
	serve := startServe(t)
	byName := "localhost:" + dest.port
	for _, tt := range []struct {
		name  string
		hops  []string
		first string
	}{
		{"only hop", []string{d.hopURL("")}, d.addr},
		{"first hop", []string{d.hopURL(""), "socks5://" + serve}, d.addr},
		{"exit behind socks5", []string{"socks5://" + serve, d.hopURL("")}, serve},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var dialed []string
			c := sshChain(t, &dialed, tt.hops...)
			for range 2 {
				conn, err := c.DialContext(context.Background(), "tcp", byName)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				body, _ := io.ReadAll(conn)
				conn.Close()
				if !strings.Contains(string(body), "peer 127.0.0.1:") {
					t.Fatalf("response %q", body)
				}
			}
			if len(dialed) != 1 || dialed[0] != tt.first {
				t.Errorf("this side dialed %v, want only %s (and once: the SSH connection is kept)", dialed, tt.first)
			}
		})
	}
}

// TestSSHHostKeyFailuresSendNothing: a wrong pin, an unknown host and a
// changed host key each refuse during sshd's key exchange, with the
// offered key and how to pin it: sshd logs no auth attempt, the
// destination sees nothing.
func TestSSHHostKeyFailuresSendNothing(t *testing.T) {
	d := startSSHD(t)
	dest := newDestination(t)
	clientPub, _ := os.ReadFile(d.clientKey + ".pub")
	other, _, _, _, _ := ssh.ParseAuthorizedKey(clientPub)
	hostPub, _ := os.ReadFile(d.hostPub)
	host, _, _, _, _ := ssh.ParseAuthorizedKey(hostPub)
	known := func(line string) string { return writeFile(t, "known_hosts", line+"\n") }
	for _, tt := range []struct {
		name, url, want string
	}{
		{"wrong pin", "ssh://root@" + d.addr + "?identity=" + d.clientKey + "&hostkey=" + ssh.FingerprintSHA256(other), "not the pinned"},
		{"unknown host", "ssh://root@" + d.addr + "?identity=" + d.clientKey + "&known_hosts=" +
			known(knownhosts.Line([]string{"other.example"}, host)), "is unknown"},
		{"changed key", "ssh://root@" + d.addr + "?identity=" + d.clientKey + "&known_hosts=" +
			known(knownhosts.Line([]string{knownhosts.Normalize(d.addr)}, other)), "HOST KEY CHANGED"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d.log.Take()
			var dialed []string
			_, err := sshChain(t, &dialed, tt.url).DialContext(context.Background(), "tcp", "127.0.0.1:"+dest.port)
			if !errors.Is(err, chain.ErrHostKey) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "hostkey="+d.hostKey) {
				t.Fatalf("err = %v; want ErrHostKey, %q and how to pin %s", err, tt.want, d.hostKey)
			}
			time.Sleep(100 * time.Millisecond) // let sshd log the end of the connection
			if log := d.log.Take(); strings.Contains(log, "Accepted") || strings.Contains(log, "authenticating user") || strings.Contains(log, "Failed") {
				t.Errorf("sshd saw an auth attempt: %s", log)
			}
			if n := dest.accepted.Load(); n != 0 {
				t.Errorf("the destination got %d connections", n)
			}
		})
	}
}

// TestSSHManyStreamsOneConnection: 100 parallel streams of 64 KiB each
// through one sshd come back intact, over one SSH connection (one login).
func TestSSHManyStreamsOneConnection(t *testing.T) {
	d := startSSHD(t)
	echo := testnet.Echo(t)
	var dialed []string
	c := sshChain(t, &dialed, d.hopURL(""))
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			conn, err := c.DialContext(context.Background(), "tcp", echo)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			data := make([]byte, 64<<10)
			rand.Read(data)
			go func() {
				conn.Write(data)
				conn.(interface{ CloseWrite() error }).CloseWrite()
			}()
			got, err := io.ReadAll(conn)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("stream: %d bytes back, %v; want the 65536 sent", len(got), err)
			}
		})
	}
	wg.Wait()
	if n := d.logins(); n != 1 {
		t.Errorf("sshd logged %d logins for 100 streams, want 1", n)
	}
}

// TestSSHServerDiesMidStream: when sshd's session process is killed, the
// stream through it ends within a second, and the next stream logs in
// again and works.
func TestSSHServerDiesMidStream(t *testing.T) {
	d := startSSHD(t)
	echo := testnet.Echo(t)
	var dialed []string
	c := sshChain(t, &dialed, d.hopURL(""))
	conn, err := c.DialContext(context.Background(), "tcp", echo)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "ping")
	if _, err := io.ReadFull(conn, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	d.killSessions()
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	if took := time.Since(start); err == nil || took > time.Second {
		t.Fatalf("after sshd died: read %v after %v; want the stream ended within a second", err, took)
	} else {
		t.Logf("the stream ended %v after sshd's session died: %v", took, err)
	}
	conn2, err := c.DialContext(context.Background(), "tcp", echo)
	if err != nil {
		t.Fatalf("the next stream: %v\nsshd: %s", err, d.log)
	}
	defer conn2.Close()
	fmt.Fprint(conn2, "pong")
	if _, err := io.ReadFull(conn2, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if n := d.logins(); n != 2 {
		t.Errorf("%d logins, want 2", n)
	}
}

// TestSSHIsolationSeparateLogins: isolate=listener keeps an SSH
// connection per listener.
func TestSSHIsolationSeparateLogins(t *testing.T) {
	d := startSSHD(t)
	echo := testnet.Echo(t)
	var dialed []string
	c := sshChain(t, &dialed, d.hopURL("&isolate=listener"))
	for _, l := range []string{"a", "b", "a"} {
		conn, err := c.DialContext(chain.WithOrigin(context.Background(), chain.Origin{Listener: l}), "tcp", echo)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
	}
	if n := d.logins(); n != 2 {
		t.Errorf("%d logins for listeners a, b, a; want 2", n)
	}
}

// TestCheckSSHHop: check reports an SSH hop's verified host key, the auth
// method sshd accepted and the channel open latency.
func TestCheckSSHHop(t *testing.T) {
	d := startSSHD(t)
	out, _ := exec.Command(veilchain(t), "check", "--hop", d.hopURL(""), "--json").Output()
	var got struct {
		Chains []struct{ Hops []chain.HopReport }
	}
	if err := json.Unmarshal(out, &got); err != nil || len(got.Chains) != 1 || len(got.Chains[0].Hops) != 1 {
		t.Fatalf("check output %s: %v", out, err)
	}
	h := got.Chains[0].Hops[0]
	if !h.Reachable || h.Auth != "ok" || h.AuthMethod != "publickey" || h.HostKey != d.hostKey || h.ChannelOpen <= 0 || h.Encrypted != "yes (host key)" {
		t.Errorf("check reported %+v", h)
	}
}
