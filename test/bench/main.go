// Command bench measures veilchain against a direct connection, in one
// run on loopback: a destination (in this process), two `veilchain serve`
// hops and a `veilchain run` front end, each a process of its own, or
// with -one-process all three roles in one `veilchain demo`. Beside them
// it measures the floor: three bare relays in the same places, with no
// handshake at all (floor.go). Every number is printed with its ratio to
// direct. BENCHMARKS.md has the flags, the numbers and what they mean.
//
// In the three-process harness it also measures the chain layered: a
// second front end through the same two serves by socks5s:// (TLS 1.3 to
// each hop, the exit's inside hop 1's), in a column of its own.
//
//	go run ./test/bench [-quick] [-setup-only] [-pipeline [-early]] [-procs N] [-one-process] [-idle-only N] [-glider PATH]
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veilchain/veilchain/chain"
)

var (
	quick     = flag.Bool("quick", false, "smaller runs (for a smoke test), not for the numbers")
	idleOnly  = flag.Int("idle-only", 0, "only measure RSS with this many idle connections")
	setupOnly = flag.Bool("setup-only", false, "only measure setup latency")
	pipeline  = flag.Bool("pipeline", false, "pipelined SOCKS5 handshakes (?pipeline=1) on every link")
	early     = flag.Bool("early", false, "with -pipeline: the front end answers early (--early-reply)")
	maxProcs  = flag.Int("procs", 0, "GOMAXPROCS for the front end and hops (0: Go's default, one per CPU)")
	oneProc   = flag.Bool("one-process", false, "one veilchain process plays front end and both hops (`veilchain demo`), as in issue 9's reference points")
	glider    = flag.String("glider", "", "measure this glider binary in the same roles instead (a peer, built beside ours)")
	relays    relayPairs
)

func main() {
	flag.Var(&relays, "relay", "`listen>to`: run as one of the floor's bare relays (the bench starts these itself)")
	flag.Parse()
	if len(relays) > 0 {
		if err := runRelays(relays); err != nil {
			fmt.Fprintln(os.Stderr, "bench relay:", err)
			os.Exit(1)
		}
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// sizes of each measurement
type sizes struct {
	bulk1, bulk8 int64 // bytes
	setups       int
	cpsFor       time.Duration
	idle         int
}

func run() error {
	sz := sizes{bulk1: 1 << 30, bulk8: 1 << 30, setups: 2000, cpsFor: 10 * time.Second, idle: 5000}
	if *quick {
		sz = sizes{bulk1: 64 << 20, bulk8: 64 << 20, setups: 200, cpsFor: time.Second, idle: 200}
	}
	dir, err := os.MkdirTemp("", "veilchain-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "veilchain")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/veilchain").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}

	dest, err := startDestination()
	if err != nil {
		return err
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
	}()
	start := func(args ...string) (*exec.Cmd, string, error) {
		cmd := exec.Command(bin, append(args, "--log-format", "json", "--log-level", "warn")...)
		if *glider != "" {
			cmd = exec.Command(*glider, args...)
		}
		cmd.Env = procEnv()
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			return nil, "", err
		}
		procs = append(procs, cmd)
		// Listening lines are at info level: read the address from a probe.
		return cmd, "", drain(stderr)
	}
	hop1Port, hop2Port, frontPort := freePort(), freePort(), freePort()
	hopArgs := func(port string) []string {
		return []string{"serve", "--listen", "127.0.0.1:" + port, "--allow-private", "--state-dir", filepath.Join(dir, "state-"+port)}
	}
	opt := ""
	if *pipeline {
		opt = "?pipeline=1"
	}
	frontArgs := []string{"run", "--socks", "127.0.0.1:" + frontPort, "--http", "",
		"--hop", "socks5://127.0.0.1:" + hop1Port + opt, "--hop", "socks5://127.0.0.1:" + hop2Port + opt}
	if *early {
		frontArgs = append(frontArgs, "--early-reply")
	}
	product := "veilchain: 2 hops (veilchain serve) behind a veilchain run front end, 3 processes"
	if *glider != "" {
		hopArgs = func(port string) []string { return []string{"-listen", "socks5://127.0.0.1:" + port} }
		frontArgs = []string{"-listen", "socks5://127.0.0.1:" + frontPort,
			"-forward", "socks5://127.0.0.1:" + hop1Port + ",socks5://127.0.0.1:" + hop2Port}
		product = "glider (peer): 2 glider hops behind a glider front end, 3 processes"
	}
	ports := []string{hop1Port, hop2Port, frontPort}
	if *oneProc {
		// demo's front end chains through a hop and an exit of its own,
		// in the same process; its exit sends from 127.0.0.2 when it can.
		frontArgs = []string{"demo", "--plain", "--socks", "127.0.0.1:" + frontPort, "--http", "127.0.0.1:" + freePort()}
		if *pipeline {
			frontArgs = append(frontArgs, "--pipeline")
		}
		if *early {
			frontArgs = append(frontArgs, "--early-reply")
		}
		product = "veilchain: front end and 2 hops in one process (veilchain demo)"
		ports = []string{frontPort}
	} else {
		if _, _, err := start(hopArgs(hop1Port)...); err != nil {
			return err
		}
		if _, _, err := start(hopArgs(hop2Port)...); err != nil {
			return err
		}
	}
	front, _, err := start(frontArgs...)
	if err != nil {
		return err
	}
	// The layered front end: the same hops, by socks5s:// with their pins.
	var layeredFront *exec.Cmd
	var viaLayered chain.Dialer
	if *glider == "" && !*oneProc {
		var urls []string
		for _, port := range []string{hop1Port, hop2Port} {
			out, err := exec.Command(bin, append(hopArgs(port), "--print-url")...).Output()
			if err != nil {
				return fmt.Errorf("serve --print-url: %w", err)
			}
			urls = append(urls, strings.TrimSpace(string(out)))
		}
		layeredPort := freePort()
		args := []string{"run", "--socks", "127.0.0.1:" + layeredPort, "--http", "", "--hop", urls[0], "--hop", urls[1]}
		if *early {
			args = append(args, "--early-reply")
		}
		if layeredFront, _, err = start(args...); err != nil {
			return err
		}
		ports = append(ports, layeredPort)
		viaLayered = &chain.Chain{Hops: []chain.Hop{&chain.SOCKS5{Address: "127.0.0.1:" + layeredPort, Pipeline: *pipeline}}}
	}
	for _, p := range ports {
		if err := waitPort("127.0.0.1:" + p); err != nil {
			return err
		}
	}
	viaChain := &chain.Chain{Hops: []chain.Hop{&chain.SOCKS5{Address: "127.0.0.1:" + frontPort, Pipeline: *pipeline}}}
	direct := &net.Dialer{}
	if *idleOnly > 0 {
		perConn, err := idleRSS(viaChain, dest.echo, front.Process.Pid, *idleOnly)
		fmt.Printf("front end RSS per idle conn, %d: %.1f KiB\n", *idleOnly, perConn)
		return err
	}

	floor, floorProcs, err := startFloor([]string{dest.bulk, dest.echo}, *oneProc, procEnv())
	procs = append(procs, floorProcs...)
	if err != nil {
		return fmt.Errorf("floor relays: %w", err)
	}
	floorBulk, floorEcho := floor[0], floor[1]

	fmt.Printf("bench: %s, all on loopback, the client and destination in the bench's own process; %d CPUs\n", product, numCPU())
	fmt.Printf("floor: 3 bare relays in the same places (no handshake: a fixed next address), %s\n\n", map[bool]string{true: "in one process", false: "3 processes"}[*oneProc])
	if viaLayered != nil {
		fmt.Printf("layered: the same chain by socks5s:// (TLS 1.3 to each hop, pinned), a second front end\n\n")
		fmt.Printf("%-38s %10s %10s %10s %10s %8s %8s %8s %8s\n", "measure", "direct", "floor", "chain", "layered", "floor/d", "chain/d", "layer/d", "layer/ch")
	} else {
		fmt.Printf("%-38s %10s %10s %10s %8s %8s\n", "measure", "direct", "floor", "chain", "floor/d", "chain/d")
	}
	// row prints one measure; l is the layered chain's, when there is one.
	row := func(name string, d, f, c, l float64, unit string) {
		if viaLayered == nil {
			fmt.Printf("%-38s %10s %10s %10s %7.2fx %7.2fx\n", name, fmtNum(d, unit), fmtNum(f, unit), fmtNum(c, unit), f/d, c/d)
			return
		}
		fmt.Printf("%-38s %10s %10s %10s %10s %7.2fx %7.2fx %7.2fx %7.2fx\n", name, fmtNum(d, unit), fmtNum(f, unit), fmtNum(c, unit), fmtNum(l, unit), f/d, c/d, l/d, l/c)
	}

	// Bulk throughput.
	for _, conns := range []int{1, 8} {
		if *setupOnly {
			break
		}
		total := sz.bulk1
		if conns == 8 {
			total = sz.bulk8
		}
		d, err := bulk(direct, dest.bulk, conns, total)
		if err != nil {
			return fmt.Errorf("direct bulk: %w", err)
		}
		f, err := bulk(direct, floorBulk, conns, total)
		if err != nil {
			return fmt.Errorf("floor bulk: %w", err)
		}
		cpu0 := cpuSeconds(front.Process.Pid)
		c, err := bulk(viaChain, dest.bulk, conns, total)
		if err != nil {
			return fmt.Errorf("chain bulk: %w", err)
		}
		cpu := cpuSeconds(front.Process.Pid) - cpu0
		var l, lcpu float64
		if viaLayered != nil {
			cpu0 := cpuSeconds(layeredFront.Process.Pid)
			if l, err = bulk(viaLayered, dest.bulk, conns, total); err != nil {
				return fmt.Errorf("layered bulk: %w", err)
			}
			lcpu = cpuSeconds(layeredFront.Process.Pid) - cpu0
		}
		row(fmt.Sprintf("bulk, %d conn(s), %d MiB (MiB/s)", conns, total>>20), d, f, c, l, "MiB/s")
		if conns == 1 {
			gib := float64(total) / (1 << 30)
			fmt.Printf("%-38s %10s %10s %10.2f %10s\n", "  front end CPU s per GiB relayed", "", "", cpu/gib, map[bool]string{true: fmt.Sprintf("%.2f", lcpu/gib)}[viaLayered != nil])
		}
	}

	// Setup latency.
	var lat [4][]time.Duration
	for i, t := range []struct {
		d    chain.Dialer
		addr string
	}{{direct, dest.echo}, {direct, floorEcho}, {viaChain, dest.echo}, {viaLayered, dest.echo}} {
		if t.d == nil {
			lat[i] = []time.Duration{0}
			continue
		}
		if lat[i], err = setupLatency(t.d, t.addr, sz.setups); err != nil {
			return err
		}
	}
	for _, p := range []int{50, 99} {
		row(fmt.Sprintf("setup+1-byte echo p%d, %d seq (µs)", p, sz.setups), us(pct(lat[0], p)), us(pct(lat[1], p)), us(pct(lat[2], p)), us(pct(lat[3], p)), "µs")
	}

	if *setupOnly {
		return nil
	}

	// Connections per second.
	dc, de := connsPerSecond(direct, dest.echo, 64, sz.cpsFor)
	fc, fe := connsPerSecond(direct, floorEcho, 64, sz.cpsFor)
	cc, ce := connsPerSecond(viaChain, dest.echo, 64, sz.cpsFor)
	var lc float64
	var le int64
	if viaLayered != nil {
		lc, le = connsPerSecond(viaLayered, dest.echo, 64, sz.cpsFor)
	}
	row(fmt.Sprintf("conns/s, 64 workers, %v", sz.cpsFor), dc, fc, cc, lc, "/s")
	fmt.Printf("%-38s %10d %10d %10d %10d\n", "  errors", de, fe, ce, le)

	// Memory per idle relayed connection.
	time.Sleep(2 * time.Second) // let the conns/s run's sockets close
	what := "front end RSS per idle conn"
	if *oneProc {
		// Three relays' six sockets per connection in one process: 5,000
		// would pass the descriptor limit (20,000 here). (Before relays
		// gave their pipes back between bursts, 1,766 was already too
		// many: each direction kept a pipe for a second after its byte.)
		sz.idle = min(sz.idle, 2000)
		what = "all 3 roles' RSS per idle conn"
	}
	perConn, err := idleRSS(viaChain, dest.echo, front.Process.Pid, sz.idle)
	if err != nil {
		return err
	}
	fmt.Printf("%-38s %10s %10s %10.1f\n", fmt.Sprintf("%s, %d (KiB)", what, sz.idle), "", "", perConn)
	return nil
}

// destination serves two ports: bulk (the client sends 8 bytes of length,
// it sends that many bytes and closes) and echo.
type destination struct{ bulk, echo string }

func startDestination() (*destination, error) {
	payload := make([]byte, 1<<20)
	serve := func(handle func(net.Conn)) (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		go func() {
			for {
				c, err := ln.Accept()
				if errors.Is(err, net.ErrClosed) {
					return
				}
				if err != nil {
					time.Sleep(10 * time.Millisecond) // out of descriptors: wait
					continue
				}
				go func() {
					defer c.Close()
					handle(c)
				}()
			}
		}()
		return ln.Addr().String(), nil
	}
	bulkAddr, err := serve(func(c net.Conn) {
		var b [8]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return
		}
		for n := int64(binary.BigEndian.Uint64(b[:])); n > 0; {
			k := min(n, int64(len(payload)))
			if _, err := c.Write(payload[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	if err != nil {
		return nil, err
	}
	// A plain read/write loop: io.Copy(c, c) would splice and keep a pipe
	// (2 descriptors) per idle connection in this process.
	echoAddr, err := serve(func(c net.Conn) {
		buf := make([]byte, 512)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	})
	return &destination{bulk: bulkAddr, echo: echoAddr}, err
}

// bulk downloads total bytes over conns connections and returns MiB/s.
func bulk(d chain.Dialer, addr string, conns int, total int64) (float64, error) {
	per := total / int64(conns)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	begin := time.Now()
	for range conns {
		wg.Go(func() {
			c, err := d.DialContext(context.Background(), "tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], uint64(per))
			c.Write(b[:])
			// Read exactly the length asked for: how a proxy passes the
			// close on (some wait for a timeout) is not what this measures.
			n, err := io.CopyN(io.Discard, c, per)
			if err == nil && n != per {
				err = fmt.Errorf("got %d bytes, want %d", n, per)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(total) / (1 << 20) / time.Since(begin).Seconds(), nil
}

func echoOnce(d chain.Dialer, addr string) error {
	c, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{1}); err != nil {
		return err
	}
	var b [1]byte
	_, err = io.ReadFull(c, b[:])
	return err
}

func setupLatency(d chain.Dialer, addr string, n int) ([]time.Duration, error) {
	var ds []time.Duration
	for range n {
		begin := time.Now()
		if err := echoOnce(d, addr); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(begin))
	}
	slices.Sort(ds)
	return ds, nil
}

func connsPerSecond(d chain.Dialer, addr string, workers int, dur time.Duration) (float64, int64) {
	var ok, failed atomic.Int64
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if echoOnce(d, addr) == nil {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(ok.Load()) / dur.Seconds(), failed.Load()
}

// idleRSS opens n relayed connections through the chain, each carrying
// one echo, holds them, and returns the front end's RSS growth per
// connection in KiB.
func idleRSS(d chain.Dialer, addr string, pid, n int) (float64, error) {
	before := rssKiB(pid)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := d.DialContext(ctx, "tcp", addr)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("idle connection %d: %w", i, err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte{1})
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return 0, fmt.Errorf("idle connection %d, echo: %w", i, err)
		}

	}
	// Idle: a relay direction parks after a whole second with nothing to
	// copy, following the one that carried the echo.
	time.Sleep(3 * time.Second)
	return float64(rssKiB(pid)-before) / float64(n), nil
}

func rssKiB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// cpuSeconds is a process's user+system CPU time.
func cpuSeconds(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100 // USER_HZ is 100 on Linux
}

func pct(ds []time.Duration, p int) time.Duration { return ds[(len(ds)-1)*p/100] }

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func fmtNum(v float64, unit string) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func freePort() string {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

func waitPort(addr string) error {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
	}
	return errors.New(addr + " never listened")
}

// drain keeps a child's stderr flowing, printing warnings and errors.
func drain(r io.Reader) error {
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var m map[string]any
			if *glider != "" {
				continue // the peer logs every connection
			}
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["level"] != "INFO" {
				fmt.Fprintln(os.Stderr, "  [veilchain]", sc.Text())
			}
		}
	}()
	return nil
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
