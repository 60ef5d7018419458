//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// nsPrefix names everything this suite creates, so that leftovers of an
// interrupted run can be found and removed by the next one.
const nsPrefix = "vce2e-"

// host is one machine of the test network: a network namespace with one
// interface on the shared bridge.
type host struct {
	name string // short role, e.g. "client"
	ns   string // namespace name
	ip   string // its address in 198.18.0.0/24
}

// network is the suite's hosts, joined by a bridge in a namespace of its own.
type network struct {
	bridgeNS string
	hosts    map[string]*host

	mu       sync.Mutex
	cleanups []func()
}

// run runs a command and fails the test with its output if it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sweep removes namespaces and /etc/netns entries left by an earlier,
// interrupted run.
func sweep() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if name, _, _ := strings.Cut(line, " "); strings.HasPrefix(name, nsPrefix) {
			exec.Command("ip", "netns", "del", name).Run()
		}
	}
	dirs, _ := filepath.Glob("/etc/netns/" + nsPrefix + "*")
	for _, d := range dirs {
		os.RemoveAll(d)
	}
}

// newNetwork builds the namespaces for roles (in order .10, .11, …) on a
// bridge, with IPv6 off so that nothing but what the test sends leaves a
// host, and a resolv.conf per host naming resolvers[role] if given.
func newNetwork(t *testing.T, roles []string, resolvers map[string]string) *network {
	t.Helper()
	sweep()
	n := &network{bridgeNS: nsPrefix + "br", hosts: map[string]*host{}}
	t.Cleanup(n.teardown)
	n.addNS(t, n.bridgeNS)
	run(t, "ip", "-n", n.bridgeNS, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", n.bridgeNS, "link", "set", "br0", "up")
	for i, role := range roles {
		h := &host{name: role, ns: nsPrefix + role, ip: fmt.Sprintf("198.18.0.%d", 10+i)}
		n.hosts[role] = h
		n.addNS(t, h.ns)
		port := fmt.Sprintf("p%d", i)
		run(t, "ip", "-n", n.bridgeNS, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
		run(t, "ip", "-n", n.bridgeNS, "link", "set", port, "master", "br0", "up")
		run(t, "ip", "netns", "exec", h.ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")
		run(t, "ip", "-n", h.ns, "addr", "add", h.ip+"/24", "dev", "eth0")
		run(t, "ip", "-n", h.ns, "link", "set", "eth0", "up")
		dir := "/etc/netns/" + h.ns
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		n.onTeardown(func() { os.RemoveAll(dir) })
		conf := "# no resolver: this host must not resolve names\nnameserver 198.18.0.254\n"
		if r, ok := resolvers[role]; ok {
			conf = "nameserver " + r + "\noptions timeout:1 attempts:1\n"
		}
		if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		// Names must reach the resolver: an empty hosts file and a plain
		// nsswitch, whatever the machine's own say.
		os.WriteFile(filepath.Join(dir, "hosts"), []byte("127.0.0.1 localhost\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "nsswitch.conf"), []byte("hosts: files dns\n"), 0o644)
	}
	return n
}

func (n *network) addNS(t *testing.T, ns string) {
	run(t, "ip", "netns", "add", ns)
	n.onTeardown(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
}

func (n *network) onTeardown(f func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cleanups = append(n.cleanups, f)
}

// teardown undoes everything, last step first; it is safe to call twice.
func (n *network) teardown() {
	n.mu.Lock()
	fs := n.cleanups
	n.cleanups = nil
	n.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// cmd returns a command that runs in h's namespace (and sees its
// /etc/netns files as /etc/resolv.conf, /etc/hosts, /etc/nsswitch.conf).
func (h *host) cmd(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
}
