//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/veilchain/veilchain/internal/testnet"
	"golang.org/x/sys/unix"
)

// A delay line is a point-to-point link between two namespaces made of two
// TUN devices, one in each, with this process in the middle: every IP
// packet read from one side is written to the other after a fixed delay,
// in order. It stands in for `tc netem delay`, which needs the sch_netem
// module (missing from some kernels, this machine's among them). Being a
// real link, it delays the TCP handshakes too, not only the data.
type delayLine struct {
	delay time.Duration
	a, b  *os.File
	wg    sync.WaitGroup
}

// link is one delay line's two ends.
type link struct {
	nsA, nsB string // namespaces
	ipA, ipB string // their addresses on the link
}

// newDelayLine creates the TUN pair for l (named dev+"a", dev+"b"), moves
// each end into its namespace with its address and a route to the other,
// and starts moving packets. The test's cleanup stops it.
func newDelayLine(t *testing.T, dev string, l link, delay time.Duration) *delayLine {
	t.Helper()
	d := &delayLine{delay: delay}
	var err error
	if d.a, err = openTUN(dev + "a"); err != nil {
		t.Fatal(err)
	}
	if d.b, err = openTUN(dev + "b"); err != nil {
		d.a.Close()
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	for _, end := range []struct{ name, ns, ip, peer string }{{dev + "a", l.nsA, l.ipA, l.ipB}, {dev + "b", l.nsB, l.ipB, l.ipA}} {
		run(t, "ip", "link", "set", end.name, "netns", end.ns)
		// Only the test's own IPv4 traffic crosses the link.
		run(t, "ip", "netns", "exec", end.ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/"+end.name+"/disable_ipv6")
		run(t, "ip", "-n", end.ns, "addr", "add", end.ip, "peer", end.peer, "dev", end.name)
		run(t, "ip", "-n", end.ns, "link", "set", end.name, "up")
	}
	d.wg.Add(2)
	go d.carry(d.a, d.b)
	go d.carry(d.b, d.a)
	return d
}

// openTUN creates a TUN device (IP packets, no extra header) and returns
// its descriptor, non-blocking so that Close ends a pending Read.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// carry moves packets from src to dst, each one delay after it was read.
// A queue between a reader and a writer keeps the reader reading while
// packets wait, so the delay is the same under load and order is kept.
func (d *delayLine) carry(src, dst *os.File) {
	defer d.wg.Done()
	type packet struct {
		due  time.Time
		data []byte
	}
	queue := make(chan packet, 4096)
	var writer sync.WaitGroup
	writer.Go(func() {
		for p := range queue {
			time.Sleep(time.Until(p.due))
			dst.Write(p.data) // a full or closed device drops it, as a link would
		}
	})
	defer writer.Wait()
	defer close(queue)
	buf := make([]byte, 65536)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return // closed, or the device went away with its namespace
		}
		select {
		case queue <- packet{time.Now().Add(d.delay), append([]byte(nil), buf[:n]...)}:
		default: // queue full: drop, as a link would
		}
	}
}

func (d *delayLine) close() {
	d.a.Close()
	d.b.Close()
	d.wg.Wait()
}

// requireTUN skips (or fails) a test that needs TUN devices and root.
func requireTUN(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testnet.SkipOrFail(t, "network namespaces and TUN devices need root")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		testnet.SkipOrFail(t, "no /dev/net/tun: %v", err)
	}
	for _, p := range []string{"ip", "curl", "nc"} {
		if _, err := exec.LookPath(p); err != nil {
			testnet.SkipOrFail(t, "%s not installed", p)
		}
	}
}
