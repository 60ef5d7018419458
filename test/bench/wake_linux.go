package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// perfCount runs f while perf stat counts, over the whole machine, the
// wake-ups, context switches and system calls of threads named comm.
func perfCount(comm string, f func() error) (map[string]float64, error) {
	dir, err := os.MkdirTemp("", "veilchain-perf-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ctl, ack, out := filepath.Join(dir, "ctl"), filepath.Join(dir, "ack"), filepath.Join(dir, "out")
	for _, p := range []string{ctl, ack} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			return nil, err
		}
	}
	is := fmt.Sprintf("comm == %q", comm)
	events := [][2]string{{"sched:sched_wakeup", is}, {"sched:sched_switch", fmt.Sprintf("prev_comm == %q", comm)}, {"raw_syscalls:sys_enter", is}}
	for _, s := range wakeSyscalls {
		events = append(events, [2]string{"syscalls:sys_enter_" + s, is})
	}
	args := []string{"stat", "-a", "-x", ",", "-o", out}
	if *wakeRecord != "" {
		args = []string{"record", "-a", "-g", "-o", *wakeRecord}
		events = [][2]string{{"sched:sched_waking", is}, {"sched:sched_switch", fmt.Sprintf("prev_comm == %q", comm)}, {"syscalls:sys_enter_nanosleep", is}}
		*wakeRecord = "" // the first build's first round only
	}
	args = append(args, "-D", "-1", "--control", "fifo:"+ctl+","+ack)
	for _, e := range events {
		args = append(args, "-e", e[0], "--filter", e[1])
	}
	cmd := exec.Command("perf", args...)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf: %w", err)
	}
	defer cmd.Wait()
	defer cmd.Process.Signal(syscall.SIGINT)
	cw, err := os.OpenFile(ctl, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer cw.Close()
	ar, err := os.OpenFile(ack, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer ar.Close()
	send := func(s string) {
		cw.WriteString(s + "\n")
		ar.Read(make([]byte, 16))
	}
	send("enable")
	ferr := f()
	send("disable")
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	b, _ := os.ReadFile(out)
	names := map[string]string{"sched:sched_wakeup": "wake-ups", "sched:sched_switch": "switches", "raw_syscalls:sys_enter": "syscalls"}
	counts := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Split(line, ","); len(f) >= 3 {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				counts[cmp.Or(names[f[2]], strings.TrimPrefix(f[2], "syscalls:sys_enter_"))] = v
			}
		}
	}
	return counts, ferr
}
