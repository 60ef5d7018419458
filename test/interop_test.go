package test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/internal/testnet"
)

// freePort returns a loopback port nothing listens on (for programs that
// cannot report the port they bound).
func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// startProgram runs a server that nobody here wrote until the test ends,
// and waits until addr accepts connections.
func startProgram(t *testing.T, addr string, name string, args ...string) {
	t.Helper()
	path := requireProgram(t, name)
	cmd := exec.Command(path, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("%s exited: %s", name, out.String())
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("%s is not listening on %s: %s", name, addr, out.String())
}

func writeFile(t *testing.T, name, content string) string {
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func startDante(t *testing.T) string {
	port := freePort(t)
	conf := writeFile(t, "danted.conf", fmt.Sprintf(`logoutput: stderr
internal: 127.0.0.1 port = %s
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
`, port))
	addr := "127.0.0.1:" + port
	startProgram(t, addr, "danted", "-f", conf, "-p", filepath.Join(t.TempDir(), "danted.pid"))
	return addr
}

func startMicrosocks(t *testing.T, auth ...string) string {
	port := freePort(t)
	addr := "127.0.0.1:" + port
	args := []string{"-i", "127.0.0.1", "-p", port}
	if len(auth) == 2 {
		args = append(args, "-u", auth[0], "-P", auth[1])
	}
	startProgram(t, addr, "microsocks", args...)
	return addr
}

func startTinyproxy(t *testing.T, auth ...string) string {
	port := freePort(t)
	conf := fmt.Sprintf("Port %s\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nMaxClients 20\nLogLevel Error\nDisableViaHeader Yes\nUser nobody\nGroup nogroup\n", port)
	if len(auth) == 2 {
		conf += fmt.Sprintf("BasicAuth %s %s\n", auth[0], auth[1])
	}
	addr := "127.0.0.1:" + port
	startProgram(t, addr, "tinyproxy", "-d", "-c", writeFile(t, "tinyproxy.conf", conf))
	return addr
}

// startSSHDynamic runs an sshd on loopback and `ssh -D` against it: OpenSSH's
// dynamic forwarding, a SOCKS4/4a/5 server (dante does not speak SOCKS4a).
func startSSHDynamic(t *testing.T) string {
	d := startSSHD(t)
	socksPort := freePort(t)
	startProgram(t, "127.0.0.1:"+socksPort, "ssh", "-N", "-F", "/dev/null", "-i", d.clientKey,
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-D", "127.0.0.1:"+socksPort, "-p", d.port, "root@127.0.0.1")
	return "127.0.0.1:" + socksPort
}

// sshd is an OpenSSH server on loopback with a host key and a client key
// of its own, made for the test.
type sshd struct {
	addr, port string
	hostKey    string // the host key's fingerprint, SHA256:...
	hostPub    string // its public key file
	clientKey  string // the private key root logs in with
	proc       *os.Process
	log        *testnet.LogBuffer // sshd's log (-e)
}

func startSSHD(t *testing.T) *sshd {
	t.Helper()
	if os.Geteuid() != 0 {
		testnet.SkipOrFail(t, "sshd needs root")
	}
	dir := t.TempDir()
	for _, k := range []string{"hostkey", "clientkey"} {
		if out, err := exec.Command(requireProgram(t, "ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "clientkey.pub"))
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	hostPub, _ := os.ReadFile(filepath.Join(dir, "hostkey.pub"))
	key, _, _, _, err := ssh.ParseAuthorizedKey(hostPub)
	if err != nil {
		t.Fatal(err)
	}
	d := &sshd{port: freePort(t), hostKey: ssh.FingerprintSHA256(key), hostPub: filepath.Join(dir, "hostkey.pub"),
		clientKey: filepath.Join(dir, "clientkey"), log: &testnet.LogBuffer{}}
	d.addr = "127.0.0.1:" + d.port
	conf := writeFile(t, "sshd_config", fmt.Sprintf("ListenAddress %s\nHostKey %[2]s/hostkey\nPidFile %[2]s/sshd.pid\n"+
		"AuthorizedKeysFile %[2]s/authorized_keys\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"+
		"KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n", d.addr, dir))
	os.MkdirAll("/run/sshd", 0o755)
	cmd := exec.Command(requireProgram(t, "/usr/sbin/sshd"), "-D", "-e", "-f", conf)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting sshd: %v", err)
	}
	d.proc = cmd.Process
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { d.killSessions(); cmd.Process.Kill(); <-exited })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", d.addr); err == nil {
			c.Close()
			return d
		}
		select {
		case <-exited:
			t.Fatalf("sshd exited: %s", d.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd is not listening on %s: %s", d.addr, d.log)
		}
	}
}

// killSessions kills, by process id, what sshd forked for its
// connections (each in a session of its own), as a server that dies: the
// listener stays.
func (d *sshd) killSessions() {
	var kill func(pid int)
	kill = func(pid int) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, f := range strings.Fields(string(b)) {
			var child int
			fmt.Sscan(f, &child)
			kill(child)
			if p, err := os.FindProcess(child); err == nil {
				p.Kill()
			}
		}
	}
	kill(d.proc.Pid)
}

// logins counts the logins sshd has logged.
func (d *sshd) logins() int { return strings.Count(d.log.String(), "Accepted publickey") }

// hopURL is an ssh:// hop to d, pinned to its host key, logging in with its client key.
func (d *sshd) hopURL(extra string) string {
	return "ssh://root@" + d.addr + "?hostkey=" + d.hostKey + "&identity=" + d.clientKey + extra
}

// startServe runs `veilchain serve` and returns its address.
func startServe(t *testing.T, args ...string) string {
	addr, _ := startServePin(t, args...)
	return addr
}

// startServePin runs `veilchain serve` and returns its address and the
// pin of its key, from the hop URL it prints.
func startServePin(t *testing.T, args ...string) (addr, pin string) {
	p := start(t, append([]string{"serve", "--listen", "127.0.0.1:0", "--allow-private", "--log-format", "json"}, args...)...)
	line := p.waitFor(t, "serving hop")
	_, pin, _ = strings.Cut(line["url"].(string), "?pin=")
	return line["addr"].(string), pin
}

// selfSigned writes a certificate for localhost and 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "veilchain test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile = writeFile(t, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = writeFile(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	return certFile, keyFile
}

// getThrough dials dest through a chain built from hop URLs and makes one
// HTTP request over it.
func getThrough(t *testing.T, dest string, hops ...string) (string, error) {
	t.Helper()
	return getThroughCtx(t, context.Background(), dest, hops...)
}

// getThroughCtx is getThrough with a context for the dial (chain.Optimistic, say).
func getThroughCtx(t *testing.T, ctx context.Context, dest string, hops ...string) (string, error) {
	t.Helper()
	c := &chain.Chain{HandshakeTimeout: 10 * time.Second}
	for _, u := range hops {
		h, err := chain.ParseHop(u)
		if err != nil {
			t.Fatalf("ParseHop(%q): %v", u, err)
		}
		c.Hops = append(c.Hops, h)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := c.DialContext(ctx, "tcp", dest)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", dest)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// TestHopTypes runs the same request through each hop type, each against
// a real server: our serve, dante, OpenSSH (ssh -D), microsocks and
// tinyproxy; then through a chain that mixes them.
func TestHopTypes(t *testing.T) {
	dest := newDestination(t)
	byName := "localhost:" + dest.port // a name: the hop resolves it
	byIP := "127.0.0.1:" + dest.port

	serve, servePin := startServePin(t)
	serveAuth, authPin := startServePin(t, "--user", "u:p")
	cert, key := selfSigned(t)
	serveTLS := startServe(t, "--user", "u:p", "--tls-cert", cert, "--tls-key", key)
	_, tlsPort, _ := net.SplitHostPort(serveTLS)

	tests := []struct {
		name string
		hop  func(t *testing.T) string // the hop URL, starting its server
		dest string
	}{
		{"serve socks5s", func(*testing.T) string { return "socks5s://" + serve + "?pin=" + servePin }, byName},
		{"serve socks5s auth", func(*testing.T) string { return "socks5s://u:p@" + serveAuth + "?pin=" + authPin + "&sni=cdn.example" }, byName},
		{"serve socks5s by CA", func(*testing.T) string { return "socks5s://u:p@localhost:" + tlsPort + "?ca=" + cert }, byName},
		{"serve https pinned", func(*testing.T) string { return "https://u:p@" + serveAuth + "?pin=" + authPin }, byName},
		{"serve socks5", func(*testing.T) string { return "socks5://" + serve }, byName},
		{"serve socks5 auth", func(t *testing.T) string { return "socks5h://u:p@" + serveAuth }, byName},
		{"serve socks4a", func(t *testing.T) string { return "socks4a://" + serve }, byName},
		{"serve socks4", func(t *testing.T) string { return "socks4://" + serve }, byIP},
		{"serve http", func(t *testing.T) string { return "http://" + serve }, byName},
		{"serve http auth", func(t *testing.T) string { return "http://u:p@" + serveAuth }, byName},
		{"serve https", func(t *testing.T) string { return "https://u:p@localhost:" + tlsPort + "?ca=" + cert }, byName},
		{"dante socks5", func(t *testing.T) string { return "socks5://" + startDante(t) }, byName},
		{"dante socks5 pipelined", func(t *testing.T) string { return "socks5://" + startDante(t) + "?pipeline=1" }, byName},
		{"serve socks5 auth pipelined", func(t *testing.T) string { return "socks5://u:p@" + serveAuth + "?pipeline=1" }, byName},
		{"openssh -D pipelined", func(t *testing.T) string { return "socks5://" + startSSHDynamic(t) + "?pipeline=1" }, byName},
		{"openssh -D socks4a", func(t *testing.T) string { return "socks4a://" + startSSHDynamic(t) }, byName},
		{"openssh -D socks5", func(t *testing.T) string { return "socks5://" + startSSHDynamic(t) }, byName},
		{"dante socks4", func(t *testing.T) string { return "socks4://" + startDante(t) }, byIP},
		{"microsocks", func(t *testing.T) string { return "socks5://" + startMicrosocks(t) }, byName},
		{"microsocks auth", func(t *testing.T) string { return "socks5://u:p@" + startMicrosocks(t, "u", "p") }, byName},
		{"tinyproxy", func(t *testing.T) string { return "http://" + startTinyproxy(t) }, byName},
		{"tinyproxy auth", func(t *testing.T) string { return "http://u:p@" + startTinyproxy(t, "u", "p") }, byName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(dest.seenPeers())
			body, err := getThrough(t, tt.dest, tt.hop(t))
			if err != nil || !strings.HasPrefix(body, "peer ") || len(dest.seenPeers()) != before+1 {
				t.Fatalf("request through %s: %q, %v", tt.name, body, err)
			}
		})
	}

	t.Run("wrong credentials", func(t *testing.T) {
		for _, hop := range []string{"socks5s://u:bad@" + serveAuth + "?pin=" + authPin + "&timeout=2s", "https://u:bad@" + serveAuth + "?pin=" + authPin + "&timeout=2s",
			"socks5s://u:p@" + serveAuth + "?pin=" + servePin, "socks5://u:bad@" + serveAuth, "http://u:bad@" + serveAuth, "http://u:bad@" + startTinyproxy(t, "u", "p"),
			"socks5://u:bad@" + startMicrosocks(t, "u", "p"), "socks4a://" + serveAuth} {
			if _, err := getThrough(t, byName, hop); err == nil {
				t.Errorf("%s: request went through", hop)
			}
		}
	})

	// Why pipelining is off by default: microsocks reads what follows the
	// greeting with the greeting and drops it, so the handshake stalls.
	t.Run("microsocks does not take pipelining", func(t *testing.T) {
		for _, hop := range []string{"socks5://" + startMicrosocks(t), "socks5://u:p@" + startMicrosocks(t, "u", "p")} {
			if _, err := getThrough(t, byName, hop+"?pipeline=1&timeout=500ms"); err == nil {
				t.Errorf("%s went through pipelined: revisit the default", hop)
			}
		}
	})

	// Every handshake of the chain and the request itself in one write:
	// each server must take what follows its handshake as stream data.
	t.Run("pipelined chain dante, serve http, serve, tinyproxy, ssh -D, optimistic", func(t *testing.T) {
		hops := []string{"socks5://" + startDante(t) + "?pipeline=1", "http://" + serve + "?pipeline=1",
			"socks5://u:p@" + serveAuth + "?pipeline=1", "http://" + startTinyproxy(t) + "?pipeline=1",
			"socks5://" + startSSHDynamic(t) + "?pipeline=1"}
		before := len(dest.seenPeers())
		body, err := getThroughCtx(t, chain.Optimistic(context.Background()), byName, hops...)
		if err != nil || !strings.HasPrefix(body, "peer ") || len(dest.seenPeers()) != before+1 {
			t.Fatalf("pipelined chain: %q, %v", body, err)
		}
	})

	t.Run("mixed chain socks5, http, socks4a", func(t *testing.T) {
		hops := []string{"socks5://" + serve, "http://" + startTinyproxy(t), "socks4a://" + startSSHDynamic(t)}
		if body, err := getThrough(t, byName, hops...); err != nil || !strings.HasPrefix(body, "peer ") {
			t.Fatalf("mixed chain: %q, %v", body, err)
		}
	})

	t.Run("https hop with an untrusted certificate", func(t *testing.T) {
		_, err := getThrough(t, byName, "https://u:p@localhost:"+tlsPort)
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v, want a certificate error", err)
		}
	})
}

// TestIPv6 runs a chain whose hop and destination are IPv6 literals.
func TestIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		testnet.SkipOrFail(t, "no IPv6 loopback here: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "peer %s\n", r.RemoteAddr)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	p := start(t, "serve", "--listen", "[::1]:0", "--allow-private", "--log-format", "json")
	hop := p.waitFor(t, "serving hop")["addr"].(string)
	for _, scheme := range []string{"socks5", "http"} {
		body, err := getThrough(t, ln.Addr().String(), scheme+"://"+hop)
		if err != nil || !strings.HasPrefix(body, "peer [::1]:") {
			t.Errorf("%s hop at %s to %s: %q, %v", scheme, hop, ln.Addr(), body, err)
		}
	}
	// Through the front end: curl sends the IPv6 literal (ATYP 0x04).
	curl := requireProgram(t, "curl")
	run := start(t, "run", "--socks", "[::1]:0", "--http", "", "--hop", "socks5://"+hop, "--log-format", "json")
	front := run.waitFor(t, "SOCKS5 front end listening")["addr"].(string)
	out, err := exec.Command(curl, "-sS", "--max-time", "10", "--socks5-hostname", front, "http://"+ln.Addr().String()+"/").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "peer [::1]:") {
		t.Errorf("curl through the front end at %s to %s: %q, %v", front, ln.Addr(), out, err)
	}
}
