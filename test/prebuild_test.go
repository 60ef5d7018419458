package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPrebuiltCircuitsThroughServes: a run with prebuild: 2 through two
// serves holds two circuits open to hop 1 before any client comes, and
// says so in status; a client's connection reaches the destination from
// the exit on one of them; a reload to prebuild: 0 closes the unused ones.
func TestPrebuiltCircuitsThroughServes(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("counts connections in /proc/net/tcp (Linux)")
	}
	dest := newDestination(t)
	hop1, exit := startServes(t)
	_, hop1Port, _ := strings.Cut(hop1, ":")
	file := filepath.Join(t.TempDir(), "prebuild.yaml")
	config := func(n int) string {
		return fmt.Sprintf("log: {format: json}\nlisteners:\n  - {name: a, socks: 127.0.0.1:0, http: \"\", chain: c}\n"+
			"chains:\n  c: {hops: [socks5://%s, socks5://u:p@%s], prebuild: %d}\n", hop1, exit, n)
	}
	os.WriteFile(file, []byte(config(2)), 0o600)
	control := filepath.Join(t.TempDir(), "control.sock")
	run := start(t, "run", "-c", file, "--control", control)
	front := run.waitFor(t, "SOCKS5 front end listening")["addr"].(string)
	ready := func() int {
		out, err := exec.Command(veilchain(t), "status", "--json", "--control", control).Output()
		var st struct {
			Chains []struct{ Prebuilt, Prebuild int }
		}
		if err != nil || json.Unmarshal(out, &st) != nil || len(st.Chains) != 1 {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		return st.Chains[0].Prebuilt
	}
	waitUntil(t, "2 circuits ready in status", func() bool { return ready() == 2 })
	if n := establishedTo(t, hop1Port); n != 2 {
		t.Fatalf("%d connections open to hop 1 with no client, want the 2 circuits", n)
	}
	url := "http://" + destName + ":" + dest.port + "/"
	if out := curlGet(t, front, url); !strings.HasPrefix(out, "peer 127.0.0.2:") {
		t.Fatalf("destination answered %q, want it to have seen the exit 127.0.0.2", out)
	}
	waitUntil(t, "the circuit replaced", func() bool { return ready() == 2 })
	os.WriteFile(file, []byte(config(0)), 0o600)
	if out, err := exec.Command(veilchain(t), "reload", "--control", control).CombinedOutput(); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	waitUntil(t, "the unused circuits closed after the reload", func() bool { return establishedTo(t, hop1Port) == 0 })
	if out := curlGet(t, front, url); !strings.HasPrefix(out, "peer 127.0.0.2:") {
		t.Fatalf("after the reload: %q", out)
	}
}

// waitUntil polls cond for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// establishedTo counts this machine's established IPv4 TCP connections
// whose far end is port on 127.0.0.1.
func establishedTo(t *testing.T, port string) int {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, _ := strconv.Atoi(port)
	want := fmt.Sprintf("0100007F:%04X", p)
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st ...
		if fields := strings.Fields(sc.Text()); len(fields) > 3 && fields[2] == want && fields[3] == "01" {
			n++
		}
	}
	return n
}

// TestPrebuiltCircuitOutwaitsTheHandshakeTimeout: a layered exit that
// authenticates its client keeps a prebuilt circuit open past its own
// handshake timeout (RequestWait), inside TLS, and the circuit then
// carries a connection.
func TestPrebuiltCircuitOutwaitsTheHandshakeTimeout(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("counts connections in /proc/net/tcp (Linux)")
	}
	dest := newDestination(t)
	_, dnsAddr := exitDNS(t)
	exit, pin := startServePin(t, "--user", "u:p", "--handshake-timeout", "1s", "--resolver", dnsAddr)
	_, exitPort, _ := strings.Cut(exit, ":")
	run := start(t, "run", "--socks", "127.0.0.1:0", "--http", "", "--control", "", "--log-format", "json",
		"--hop", "socks5s://u:p@"+exit+"?pin="+pin, "--prebuild", "1", "--prebuild-idle", "10s")
	front := run.waitFor(t, "SOCKS5 front end listening")["addr"].(string)
	waitUntil(t, "the circuit", func() bool { return establishedTo(t, exitPort) == 1 })
	time.Sleep(2500 * time.Millisecond) // past the exit's handshake timeout
	if n := establishedTo(t, exitPort); n != 1 {
		t.Fatalf("%d connections to the exit after its handshake timeout, want the circuit still open", n)
	}
	if out := curlGet(t, front, "http://"+destName+":"+dest.port+"/"); !strings.HasPrefix(out, "peer ") {
		t.Fatalf("destination answered %q", out)
	}
	if strings.Contains(run.stderr(), "closed a circuit built ahead") {
		t.Fatalf("the exit closed the circuit:\n%s", run.stderr())
	}
}
