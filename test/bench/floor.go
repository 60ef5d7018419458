package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// The floor is what the chain's shape alone costs on this machine: three
// bare relays in the same places as the front end and the two hops (three
// processes, or one with -one-process), each forwarding every connection
// to a fixed next address with no handshake, no policy and no parsing,
// by io.Copy in both directions (which splices). No proxy that relays
// through the same number of TCP connections can beat it, so each target
// ratio is read against it, measured in the same run.

// relayPairs is the -relay flag: "listen>to", repeatable. A bench
// process given any runs those relays until it is killed.
type relayPairs []string

func (r *relayPairs) String() string     { return strings.Join(*r, " ") }
func (r *relayPairs) Set(v string) error { *r = append(*r, v); return nil }

// runRelays serves each "listen>to" pair and never returns unless a
// listener cannot be opened.
func runRelays(pairs []string) error {
	for _, p := range pairs {
		listen, to, ok := strings.Cut(p, ">")
		if !ok {
			return fmt.Errorf("-relay %q: want listen>to", p)
		}
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return err
		}
		go bareRelay(ln, to)
	}
	select {}
}

// bareRelay forwards every connection ln accepts to to.
func bareRelay(ln net.Listener, to string) {
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue // out of descriptors, say: the client sees its dial fail
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", to)
			if err != nil {
				return
			}
			defer u.Close()
			done := make(chan struct{})
			go func() {
				io.Copy(u, c)
				u.(*net.TCPConn).CloseWrite()
				close(done)
			}()
			io.Copy(c, u)
			c.(*net.TCPConn).CloseWrite()
			<-done
		}()
	}
}

// startFloor starts three bare relays in front of each destination
// address, as separate processes or (oneProcess) in one, and returns the
// entry address for each destination and the processes to stop.
func startFloor(dests []string, oneProcess bool, env []string) (entries []string, procs []*exec.Cmd, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	// roles[i] holds the pairs of the i-th relay position: front, hop 1, hop 2.
	roles := make([][]string, 3)
	for _, dest := range dests {
		next := dest
		for i := 2; i >= 0; i-- {
			addr := "127.0.0.1:" + freePort()
			roles[i] = append(roles[i], addr+">"+next)
			next = addr
		}
		entries = append(entries, next)
	}
	if oneProcess {
		roles = [][]string{append(append(roles[0], roles[1]...), roles[2]...)}
	}
	for _, pairs := range roles {
		var args []string
		for _, p := range pairs {
			args = append(args, "-relay", p)
		}
		cmd := exec.Command(self, args...)
		cmd.Env, cmd.Stderr = env, os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, procs, err
		}
		procs = append(procs, cmd)
		for _, p := range pairs {
			listen, _, _ := strings.Cut(p, ">")
			if err := waitPort(listen); err != nil {
				return nil, procs, err
			}
		}
	}
	return entries, procs, nil
}

// procEnv is the environment of the processes under test.
func procEnv() []string {
	if *maxProcs > 0 {
		return append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(*maxProcs))
	}
	return os.Environ()
}
