// Command bench measures veilchain against a direct connection, in one
// run on loopback: a destination (in this process), two `veilchain serve`
// hops and a `veilchain run` front end, each a process of its own, or
// with -one-process all three roles in one `veilchain demo`. Beside them
// it measures the floor: three bare relays in the same places, with no
// handshake at all (floor.go). In the three-process harness it also
// measures the chain layered: a second front end through the same two
// serves by socks5s:// (TLS 1.3 to each hop, the exit's inside hop 1's),
// and each peer given (-glider, -gost: peers.go) in the same three roles.
// Each is a column of one table, measured in the same run; ratio tables
// (to direct, to the floor, to veilchain) follow it. BENCHMARKS.md has
// the flags, the numbers and what they mean.
//
//	go run ./test/bench [-quick] [-setup-only] [-pipeline [-early]] [-procs N] [-one-process] [-idle-only N] [-glider PATH] [-gost PATH]
//	go run ./test/bench -wake BIN,BIN ...   (builds compared by wake-ups: wake.go)
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
	setupGap  = flag.Duration("setup-gap", 0, "a pause before each sequential setup, so that the last one's teardown is over (glider closes a relay 5 s after its client, outside any window)")
	prebuild  = flag.Int("prebuild", 16, "circuits built ahead for the prebuilt column (0: no such column)")
	oneProc   = flag.Bool("one-process", false, "one veilchain process plays front end and both hops (`veilchain demo`), as in issue 9's reference points")
	glider    = flag.String("glider", "", "also measure this glider binary in the same three roles, in a column of its own (a peer, built outside the repository)")
	gost      = flag.String("gost", "", "also measure this gost (v3) binary in the same three roles, in a column of its own (a peer, built outside the repository)")
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
	if *wake != "" {
		if err := runWake(); err != nil {
			fmt.Fprintln(os.Stderr, "bench -wake:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// sizes of each measurement
type sizes struct {
	bulk1, bulk8 int64 // bytes
	bulkFor      time.Duration
	setups       int
	cpsFor       time.Duration
	idle         int
}

func run() error {
	sz := sizes{bulk1: 1 << 30, bulk8: 1 << 30, bulkFor: 5 * time.Minute, setups: 2000, cpsFor: 10 * time.Second, idle: 5000}
	if *quick {
		sz = sizes{bulk1: 64 << 20, bulk8: 64 << 20, bulkFor: time.Minute, setups: 200, cpsFor: time.Second, idle: 200}
	}
	peers := peersGiven()
	if *oneProc && len(peers) > 0 {
		return errors.New("-glider and -gost play the three roles in three processes: leave out -one-process")
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
	var ps processes
	defer ps.stop()
	veilchain := func(label string, args ...string) (*exec.Cmd, error) {
		return ps.start(label, true, nil, bin, append(args, "--log-format", "json", "--log-level", "warn")...)
	}
	hop1Port, hop2Port, frontPort := freePort(), freePort(), freePort()
	hopArgs := func(port string) []string {
		return []string{"serve", "--listen", "127.0.0.1:" + port, "--allow-private", "--state-dir", filepath.Join(dir, "state-"+port)}
	}
	opt, style := "", "lock-step"
	if *pipeline {
		opt, style = "?pipeline=1", "pipelined"
		if *early {
			style += ", early reply"
		}
	}
	// --control "": the front ends leave the user's control socket alone.
	frontArgs := []string{"run", "--socks", "127.0.0.1:" + frontPort, "--http", "", "--control", "",
		"--hop", "socks5://127.0.0.1:" + hop1Port + opt, "--hop", "socks5://127.0.0.1:" + hop2Port + opt}
	if *early {
		frontArgs = append(frontArgs, "--early-reply")
	}
	legend := [][2]string{
		{"direct", "the destination itself"},
		{"floor", "3 bare relays in the same places (no handshake: a fixed next address), 3 processes"},
		{"veilchain", "a veilchain run front end, 2 veilchain serve hops by socks5:// (" + style + "), 3 processes"},
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
		legend[1][1] = "3 bare relays in the same places (no handshake: a fixed next address), in one process"
		legend[2][1] = "front end and 2 hops in one process (veilchain demo --plain, " + style + ")"
		ports = []string{frontPort}
	} else {
		if _, err := veilchain("veilchain hop 1", hopArgs(hop1Port)...); err != nil {
			return err
		}
		if _, err := veilchain("veilchain hop 2", hopArgs(hop2Port)...); err != nil {
			return err
		}
		// The front end probes its first hop when it starts: a hop not
		// yet listening is marked dead for a few seconds.
		for _, port := range []string{hop1Port, hop2Port} {
			if err := waitPort("127.0.0.1:" + port); err != nil {
				return err
			}
		}
	}
	front, err := veilchain("veilchain front", frontArgs...)
	if err != nil {
		return err
	}
	cols := []*column{{name: "veilchain", d: socksVia(frontPort), bulk: dest.bulk, echo: dest.echo, pid: front.Process.Pid, idle: true}}
	// The layered front end: the same hops, by socks5s:// with their pins.
	if !*oneProc {
		var urls []string
		for _, port := range []string{hop1Port, hop2Port} {
			out, err := exec.Command(bin, append(hopArgs(port), "--print-url")...).Output()
			if err != nil {
				return fmt.Errorf("serve --print-url: %w", err)
			}
			urls = append(urls, strings.TrimSpace(string(out)))
		}
		layeredPort := freePort()
		args := []string{"run", "--socks", "127.0.0.1:" + layeredPort, "--http", "", "--control", "", "--hop", urls[0], "--hop", urls[1]}
		if *early {
			args = append(args, "--early-reply")
		}
		layeredFront, err := veilchain("layered front", args...)
		if err != nil {
			return err
		}
		ports = append(ports, layeredPort)
		cols = append(cols, &column{name: "layered", d: socksVia(layeredPort), bulk: dest.bulk, echo: dest.echo, pid: layeredFront.Process.Pid, idle: true})
		legend = append(legend, [2]string{"layered", "a second veilchain run front end through the same serves by socks5s:// (TLS 1.3 to each hop, pinned)"})
	}
	// The prebuilt front end: the same plain hops, with circuits built
	// ahead (issue 20). The serves here have no users, so they wait for a
	// request only their handshake timeout (10 s): the circuits are
	// replaced sooner than that.
	if !*oneProc && *prebuild > 0 {
		port := freePort()
		args := append([]string{}, frontArgs...)
		args[2] = "127.0.0.1:" + port // --socks
		args = append(args, "--prebuild", strconv.Itoa(*prebuild), "--prebuild-idle", "8s")
		pre, err := veilchain("prebuilt front", args...)
		if err != nil {
			return err
		}
		ports = append(ports, port)
		cols = append(cols, &column{name: "prebuilt", d: socksVia(port), bulk: dest.bulk, echo: dest.echo, pid: pre.Process.Pid})
		legend = append(legend, [2]string{"prebuilt", fmt.Sprintf("a third veilchain run front end through the same serves, as veilchain's but with --prebuild %d (circuits built ahead; its idle RSS is not measured: the circuits it keeps would count)", *prebuild)})
	}
	// Each peer in the same three roles, with hops of its own. One that
	// does not come up fails each phase in its column.
	for _, p := range peers {
		h1, h2, fp := freePort(), freePort(), freePort()
		wait := func(ports ...string) {
			for _, port := range ports {
				if err := waitPort("127.0.0.1:" + port); err != nil {
					fmt.Fprintf(os.Stderr, "bench: %s: %v\n", p.name, err)
				}
			}
		}
		if _, err := ps.start(p.name+" hop 1", false, p.env, p.path, p.hop(h1)...); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		if _, err := ps.start(p.name+" hop 2", false, p.env, p.path, p.hop(h2)...); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		wait(h1, h2)
		pf, err := ps.start(p.name+" front", false, p.env, p.path, p.front(fp, h1, h2)...)
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		wait(fp)
		cols = append(cols, &column{name: p.name, d: socksVia(fp), bulk: dest.bulk, echo: dest.echo, pid: pf.Process.Pid, idle: true})
		legend = append(legend, [2]string{p.name, p.path + " (" + p.version() + "): " + p.about + ", 3 processes"})
	}
	for _, p := range ports {
		if err := waitPort("127.0.0.1:" + p); err != nil {
			return err
		}
	}
	if *idleOnly > 0 {
		t := &table{cols: cols}
		t.header()
		t.row(fmt.Sprintf("front end RSS per idle conn, %d (KiB)", *idleOnly), 1, true, idlePhase(t, *idleOnly))
		t.finish()
		return nil
	}

	floor, floorProcs, err := startFloor([]string{dest.bulk, dest.echo}, *oneProc, procEnv())
	ps.list = append(ps.list, floorProcs...)
	if err != nil {
		return fmt.Errorf("floor relays: %w", err)
	}
	direct := &net.Dialer{}
	t := &table{cols: append([]*column{
		{name: "direct", d: direct, bulk: dest.bulk, echo: dest.echo},
		{name: "floor", d: direct, bulk: floor[0], echo: floor[1], pid: floorProcs[0].Process.Pid},
	}, cols...)}

	fmt.Printf("bench: all on loopback, the client and destination in the bench's own process; %d CPUs; the client is %s\n", numCPU(), style)
	for _, l := range legend {
		fmt.Printf("  %-10s %s\n", l[0], l[1])
	}
	cpuRow := "  CPU s per GiB, %d conn(s) (floor: relay 1)"
	idleRow := "front end RSS per idle conn, %d (KiB)"
	if *oneProc {
		cpuRow = "  CPU s per GiB, %d conn(s) (the one process)"
		idleRow = "all 3 roles' RSS per idle conn, %d (KiB)"
	}
	fmt.Println("  (RSS per idle connection is not measured for the floor: io.Copy holds a splice pipe per direction)")
	fmt.Println()
	t.header()

	// Bulk throughput, and the CPU time the front end (the floor's first
	// relay) spends on it.
	for _, conns := range []int{1, 8} {
		if *setupOnly {
			break
		}
		total := sz.bulk1
		if conns == 8 {
			total = sz.bulk8
		}
		rate, cpu := t.cells(), t.cells()
		for i, c := range t.cols {
			var cpu0 float64
			if c.pid != 0 {
				cpu0 = cpuSeconds(c.pid)
			}
			v, err := bulk(c.d, c.bulk, conns, total, sz.bulkFor)
			if err != nil {
				rate[i] = t.fail(c, fmt.Sprintf("bulk, %d conn(s)", conns), err)
				continue
			}
			rate[i] = val(v)
			if c.pid != 0 {
				cpu[i] = val((cpuSeconds(c.pid) - cpu0) / (float64(total) / (1 << 30)))
			}
		}
		t.row(fmt.Sprintf("bulk, %d conn(s), %d MiB (MiB/s)", conns, total>>20), 1, true, rate)
		t.row(fmt.Sprintf(cpuRow, conns), 2, true, cpu)
	}

	// Setup latency.
	p50, p99, errs := t.cells(), t.cells(), t.cells()
	for i, c := range t.cols {
		lat, n, err := setupLatency(c.d, c.echo, sz.setups)
		errs[i] = val(float64(n))
		if lat == nil {
			p50[i] = t.fail(c, "setup", err)
			p99[i] = p50[i]
			continue
		}
		if err != nil {
			t.note(c, "setup", err)
		}
		p50[i], p99[i] = val(us(pct(lat, 50))), val(us(pct(lat, 99)))
	}
	t.row(fmt.Sprintf("setup+1-byte echo p50, %d seq (µs)", sz.setups), 1, true, p50)
	t.row("setup+1-byte echo p99 (µs)", 1, true, p99)
	t.row("  errors", 0, false, errs)

	if *setupOnly {
		t.finish()
		return nil
	}

	// Connections per second.
	rate, cpsErrs := t.cells(), t.cells()
	for i, c := range t.cols {
		r, n, err := connsPerSecond(c.d, c.echo, 64, sz.cpsFor)
		rate[i], cpsErrs[i] = val(r), val(float64(n))
		if err != nil {
			t.note(c, "conns/s", err)
		}
	}
	t.row(fmt.Sprintf("conns/s, 64 workers, %v", sz.cpsFor), 1, true, rate)
	t.row("  errors", 0, false, cpsErrs)

	// Memory per idle relayed connection.
	time.Sleep(2 * time.Second) // let the conns/s runs' sockets close
	if *oneProc {
		// Three relays' six sockets per connection in one process: 5,000
		// would pass the descriptor limit (20,000 here). (Before relays
		// gave their pipes back between bursts, 1,766 was already too
		// many: each direction kept a pipe for a second after its byte.)
		sz.idle = min(sz.idle, 2000)
	}
	t.row(fmt.Sprintf(idleRow, sz.idle), 1, true, idlePhase(t, sz.idle))
	t.finish()
	return nil
}

// idlePhase measures RSS per idle relayed connection for each column
// that has it, one column after another.
func idlePhase(t *table, n int) []cell {
	cells := t.cells()
	first := true
	for i, c := range t.cols {
		if !c.idle || c.pid == 0 {
			continue
		}
		if !first {
			time.Sleep(2 * time.Second) // let the last column's connections close
		}
		first = false
		perConn, err := idleRSS(c.d, c.echo, c.pid, n)
		if err != nil {
			cells[i] = t.fail(c, "idle connections", err)
			continue
		}
		cells[i] = val(perConn)
	}
	return cells
}

// socksVia reaches the destination through a SOCKS5 front end on port.
func socksVia(port string) chain.Dialer {
	return &chain.Chain{Hops: []chain.Hop{&chain.SOCKS5{Address: "127.0.0.1:" + port, Pipeline: *pipeline}}}
}

// processes are the processes under test, stopped when the bench ends.
type processes struct{ list []*exec.Cmd }

// start runs bin with args, adding env to the environment. Its standard
// error is shown: for veilchain (json) the lines above info, for a peer
// every line; both up to a bound.
func (ps *processes) start(label string, isJSON bool, env []string, bin string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(procEnv(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	ps.list = append(ps.list, cmd)
	// Listening lines are at info level: the bench waits for the port.
	go drain(stderr, label, isJSON)
	return cmd, nil
}

func (ps *processes) stop() {
	for _, p := range ps.list {
		p.Process.Kill()
		p.Wait()
	}
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

// bulk downloads total bytes over conns connections and returns MiB/s;
// each connection has limit to finish.
func bulk(d chain.Dialer, addr string, conns int, total int64, limit time.Duration) (float64, error) {
	per := total / int64(conns)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	begin := time.Now()
	for range conns {
		wg.Go(func() {
			c, err := dial(d, addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(begin.Add(limit))
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

// dialTimeout bounds every dial through a column.
const dialTimeout = 10 * time.Second

func dial(d chain.Dialer, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	return d.DialContext(ctx, "tcp", addr)
}

func echoOnce(d chain.Dialer, addr string) error {
	c, err := dial(d, addr)
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

// maxSetupErrors is how many failed setups fail a column's setup phase.
const maxSetupErrors = 20

// setupLatency times n setups one after another and returns the times
// of those that succeeded, sorted (nil if the phase failed), how many
// failed, and, if any did, an error that says so.
func setupLatency(d chain.Dialer, addr string, n int) ([]time.Duration, int, error) {
	var ds []time.Duration
	failed := 0
	var last error
	for range n {
		time.Sleep(*setupGap) // 0: back to back, each teardown beside the next setup
		begin := time.Now()
		if err := echoOnce(d, addr); err != nil {
			if failed, last = failed+1, err; failed >= maxSetupErrors {
				return nil, failed, fmt.Errorf("%d setups failed (of %d tried), the last: %w", failed, len(ds)+failed, err)
			}
			continue
		}
		ds = append(ds, time.Since(begin))
	}
	if len(ds) == 0 {
		return nil, failed, fmt.Errorf("no setup succeeded, the last: %w", last)
	}
	slices.Sort(ds)
	if failed > 0 {
		return ds, failed, fmt.Errorf("%d setups failed (of %d), the last: %w", failed, n, last)
	}
	return ds, 0, nil
}

// connsPerSecond sets up connections with workers in parallel for dur,
// each carrying a 1-byte echo, and returns how many succeeded per
// second, how many failed and, if any did, the first error.
func connsPerSecond(d chain.Dialer, addr string, workers int, dur time.Duration) (float64, int64, error) {
	var ok, failed atomic.Int64
	var first atomic.Pointer[error]
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := echoOnce(d, addr); err == nil {
					ok.Add(1)
				} else {
					failed.Add(1)
					first.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	var err error
	if p := first.Load(); p != nil {
		err = fmt.Errorf("%d connections failed, the first: %w", failed.Load(), *p)
	}
	return float64(ok.Load()) / dur.Seconds(), failed.Load(), err
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
	// perConn waits for the relays to go idle and returns the growth per
	// connection, over the first opened.
	perConn := func(opened int) float64 {
		// Idle: a relay direction parks after a whole second with
		// nothing to copy, following the one that carried the echo.
		time.Sleep(3 * time.Second)
		kib := float64(rssKiB(pid)-before) / float64(max(opened, 1))
		if whileIdle != nil {
			whileIdle() // wake.go's profiles, taken while the connections are open
		}
		return kib
	}
	// failed says what failed, and what the connections opened until then
	// cost and left the front end with.
	failed := func(i int, err error) (float64, error) {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		return 0, fmt.Errorf("idle connection %d: %w; the front end then held %d descriptors (limit %s), and the %d before it %.1f KiB each",
			i, err, len(fds), openFilesLimit(pid), i, perConn(i))
	}
	for i := range n {
		c, err := dial(d, addr)
		if err != nil {
			return failed(i, err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte{1})
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return failed(i, fmt.Errorf("echo: %w", err))
		}
	}
	return perConn(n), nil
}

// openFilesLimit is a process's soft limit on descriptors.
func openFilesLimit(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0]
			}
		}
	}
	return "unknown"
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

// drain keeps a child's stderr flowing and shows up to 20 of its lines:
// for veilchain (json) those above info, for a peer all.
func drain(r io.Reader, label string, isJSON bool) {
	sc := bufio.NewScanner(r)
	shown := 0
	for sc.Scan() {
		var m map[string]any
		if isJSON && json.Unmarshal(sc.Bytes(), &m) == nil && m["level"] == "INFO" {
			continue
		}
		if shown++; shown <= 20 {
			fmt.Fprintf(os.Stderr, "  [%s] %s\n", label, sc.Text())
		} else if shown == 21 {
			fmt.Fprintf(os.Stderr, "  [%s] (more lines not shown)\n", label)
		}
	}
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
