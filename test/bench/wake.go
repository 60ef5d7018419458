package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/veilchain/veilchain/chain"
)

// -wake compares veilchain builds by what a connection costs the chain's
// processes in thread wake-ups and system calls (issue 20), counted by
// perf stat over the whole machine and filtered on the builds' own
// thread names (a binary's base name, at most 15 bytes: give each build a
// name of its own). Builds alternate, round after round, in one run, so
// that they share the machine's load. Needs root and perf.
//
//	cp veilchain-main /tmp/vcA; cp veilchain-new /tmp/vcB
//	go run ./test/bench -wake /tmp/vcA,/tmp/vcB [-wake-rounds 3] [-wake-n 2000] [-wake-cps 3s]
//	                    [-pipeline [-early]] [-one-process] [-procs N]
//	go run ./test/bench -wake /tmp/vcA,/tmp/vcB -idle-only 2000 [-one-process [-wake-pprof DIR]]
//
// A binary whose name starts with "glider" is run as glider in the same
// three roles (a peer beside a build: -wake /tmp/vcA,/tmp/glider).
//
// whileIdle, if set, runs while idleRSS still holds its connections.
var whileIdle func()

var (
	wake       = flag.String("wake", "", "comma-separated veilchain `binaries` to compare by wake-ups and system calls per connection (see wake.go)")
	wakeRounds = flag.Int("wake-rounds", 3, "with -wake: rounds, each build once per round")
	wakeN      = flag.Int("wake-n", 2000, "with -wake: sequential setups per measurement")
	wakeCPS    = flag.Duration("wake-cps", 0, "with -wake: also this long of 32 workers' connections, counted apart")
	wakeRecord = flag.String("wake-record", "", "with -wake: perf record the first build's wake-ups, with call graphs, into this `file`")
	wakePprof  = flag.String("wake-pprof", "", "with -wake -idle-only -one-process: save the demo's heap and goroutine profiles in this `dir`")
)

// wakeSyscalls are the system calls counted one by one.
var wakeSyscalls = []string{"setsockopt", "futex", "nanosleep", "epoll_pwait", "epoll_ctl", "read", "write", "recvfrom", "splice", "getsockopt", "getsockname", "connect", "accept4", "close", "shutdown"}

func runWake() error {
	bins := strings.Split(*wake, ",")
	dest, err := startDestination()
	if err != nil {
		return err
	}
	sums := map[string]map[string][]float64{}
	for round := range *wakeRounds {
		for _, bin := range bins {
			name := filepath.Base(bin)
			if sums[name] == nil {
				sums[name] = map[string][]float64{}
			}
			got, err := wakeOnce(bin, dest.echo)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			fmt.Printf("round %d %-15s", round+1, name)
			for _, k := range []string{"p50 µs", "wake-ups", "switches", "syscalls", "conns/s", "errors", "load wake-ups", "load syscalls", "KiB per idle conn"} {
				if v, ok := got[k]; ok {
					fmt.Printf("  %s %.1f", k, v)
				}
			}
			fmt.Println()
			for k, v := range got {
				sums[name][k] = append(sums[name][k], v)
			}
			time.Sleep(time.Second)
		}
	}
	if *idleOnly > 0 {
		return nil
	}
	fmt.Printf("\n%-22s", "per connection, mean")
	for _, bin := range bins {
		fmt.Printf(" %12s", filepath.Base(bin))
	}
	fmt.Println()
	keys := append([]string{"wake-ups", "switches", "syscalls"}, wakeSyscalls...)
	keys = append(keys, "p50 µs (median)")
	if *wakeCPS > 0 {
		keys = append(keys, "conns/s (median)")
	}
	for _, k := range keys {
		fmt.Printf("%-22s", k)
		for _, bin := range bins {
			vs := sums[filepath.Base(bin)][strings.TrimSuffix(k, " (median)")]
			v := 0.0
			if strings.HasSuffix(k, "(median)") {
				slices.Sort(vs)
				v = vs[len(vs)/2]
			} else {
				for _, x := range vs {
					v += x / float64(len(vs))
				}
			}
			fmt.Printf(" %12.2f", v)
		}
		fmt.Println()
	}
	return nil
}

// wakeOnce starts bin's chain (or demo), warms it up, and measures.
func wakeOnce(bin, echo string) (map[string]float64, error) {
	pprofAddr := ""
	if *wakePprof != "" && *oneProc && *idleOnly > 0 {
		pprofAddr = "127.0.0.1:" + freePort()
	}
	front, pid, stop, err := startWakeChain(bin, pprofAddr)
	defer stop()
	if err != nil {
		return nil, err
	}
	via := &chain.Chain{Hops: []chain.Hop{&chain.SOCKS5{Address: front, Pipeline: *pipeline}}}
	if *idleOnly > 0 {
		whileIdle = func() {
			if pprofAddr == "" {
				return
			}
			// A build from before VEILCHAIN_PPROF has no profiles to give.
			if err := saveProfiles(pprofAddr, filepath.Join(*wakePprof, filepath.Base(bin))); err != nil {
				fmt.Fprintf(os.Stderr, "%s: no profiles: %v\n", filepath.Base(bin), err)
			}
		}
		perConn, err := idleRSS(via, echo, pid, *idleOnly)
		return map[string]float64{"KiB per idle conn": perConn}, err
	}
	if _, _, err := setupLatency(via, echo, 200); err != nil { // warm up
		return nil, err
	}
	name := filepath.Base(bin)
	got := map[string]float64{}
	var lat []time.Duration
	counts, err := perfCount(name, func() error {
		var err error
		lat, _, err = setupLatency(via, echo, *wakeN)
		return err
	})
	if err != nil {
		return nil, err
	}
	for k, v := range counts {
		got[k] = v / float64(*wakeN)
	}
	got["p50 µs"] = us(pct(lat, 50))
	if *wakeCPS > 0 {
		time.Sleep(500 * time.Millisecond)
		var ok, failed int64
		counts, err := perfCount(name, func() error {
			n, e, _ := connsPerSecond(via, echo, 32, *wakeCPS)
			ok, failed = int64(n*wakeCPS.Seconds()), e
			return nil
		})
		if err != nil {
			return nil, err
		}
		got["conns/s"], got["errors"] = float64(ok)/wakeCPS.Seconds(), float64(failed)
		got["load wake-ups"] = counts["wake-ups"] / float64(max(ok, 1))
		got["load syscalls"] = counts["syscalls"] / float64(max(ok, 1))
	}
	return got, nil
}

// startWakeChain starts hop 1, hop 2 and a front end from bin (or one
// demo, with -one-process), as the bench does, and returns the front
// end's SOCKS address and process id.
func startWakeChain(bin, pprofAddr string) (front string, pid int, stop func(), err error) {
	var cmds []*exec.Cmd
	dir, err := os.MkdirTemp("", "veilchain-wake-")
	stop = func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
		os.RemoveAll(dir)
	}
	if err != nil {
		return "", 0, stop, err
	}
	isGlider := strings.HasPrefix(filepath.Base(bin), "glider") // see -wake's usage above
	start := func(args ...string) error {
		cmd := exec.Command(bin, append(args, "--log-format", "json", "--log-level", "warn")...)
		if isGlider {
			cmd = exec.Command(bin, args...)
		}
		cmd.Env = procEnv()
		if pprofAddr != "" {
			cmd.Env = append(cmd.Env, "VEILCHAIN_PPROF="+pprofAddr)
		}
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			return err
		}
		cmds, pid = append(cmds, cmd), cmd.Process.Pid
		go drain(stderr, filepath.Base(bin), true)
		return nil
	}
	frontPort := freePort()
	args := []string{"demo", "--plain", "--socks", "127.0.0.1:" + frontPort, "--http", "127.0.0.1:" + freePort()}
	if *pipeline {
		args = append(args, "--pipeline")
	}
	var gh []string
	if !*oneProc {
		opt := map[bool]string{true: "?pipeline=1"}[*pipeline]
		args = []string{"run", "--socks", "127.0.0.1:" + frontPort, "--http", ""}
		for _, port := range []string{freePort(), freePort()} {
			sargs := []string{"serve", "--listen", "127.0.0.1:" + port, "--allow-private", "--state-dir", filepath.Join(dir, port)}
			if isGlider {
				sargs = []string{"-listen", "socks5://127.0.0.1:" + port}
				gh = append(gh, "socks5://127.0.0.1:"+port)
			}
			if err := start(sargs...); err != nil {
				return "", 0, stop, err
			}
			if err := waitPort("127.0.0.1:" + port); err != nil { // before the front end probes it
				return "", 0, stop, err
			}
			args = append(args, "--hop", "socks5://127.0.0.1:"+port+opt)
		}
	}
	if *early {
		args = append(args, "--early-reply")
	}
	if isGlider {
		args = []string{"-listen", "socks5://127.0.0.1:" + frontPort, "-forward", strings.Join(gh, ",")}
	}
	if err := start(args...); err != nil {
		return "", 0, stop, err
	}
	front = "127.0.0.1:" + frontPort
	if err := waitPort(front); err != nil {
		return "", 0, stop, err
	}
	return front, pid, stop, nil
}

// saveProfiles saves the demo's heap (after a collection) and goroutine
// profiles as prefix-heap.pb.gz and so on, with its memory statistics
// before and after the collection.
func saveProfiles(addr, prefix string) error {
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return err
	}
	for _, p := range [][2]string{{"heap?debug=1", "memstats-before-gc.txt"}, {"goroutine?debug=1", "goroutine.txt"}, {"heap?gc=1", "heap.pb.gz"}, {"heap?debug=1", "memstats-after-gc.txt"}} {
		resp, err := http.Get("http://" + addr + "/" + p[0])
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if err := os.WriteFile(prefix+"-"+p[1], b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
