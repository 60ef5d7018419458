//go:build !portable

package chain

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/veilchain/veilchain/internal/testnet"
)

// spliceCopy moves what it is given intact, stops at EOF, and at src's
// read deadline with what it moved so far.
func TestSpliceCopy(t *testing.T) {
	src, in := pair(t)
	out, dst := pair(t)
	rc, _ := in.(*net.TCPConn).SyscallConn()
	wc, _ := out.(*net.TCPConn).SyscallConn()

	data := make([]byte, 3<<20+17) // more than one pipe's worth, and not a multiple
	rand.Read(data)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(dst)
		got <- b
	}()
	go func() {
		src.Write(data[:1000])
		time.Sleep(20 * time.Millisecond) // a pause: the copy waits for more, without a pipe
		src.Write(data[1000:])
		src.(*net.TCPConn).CloseWrite()
	}()
	n, ok, err := spliceCopy(wc, rc, nil)
	if !ok || err != nil || n != int64(len(data)) {
		t.Fatalf("spliceCopy = %d, %v, %v; want %d, true, nil", n, ok, err, len(data))
	}
	out.(*net.TCPConn).CloseWrite()
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("destination got %d bytes, not the %d sent", len(b), len(data))
	}

	// A deadline ends it with what it moved.
	src2, in2 := pair(t)
	_, dst2 := pair(t)
	rc2, _ := in2.(*net.TCPConn).SyscallConn()
	src2.Write([]byte("abc"))
	in2.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	discard, _ := dst2.(*net.TCPConn).SyscallConn()
	n, ok, err = spliceCopy(discard, rc2, nil)
	if !ok || n != 3 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("at the deadline: spliceCopy = %d, %v, %v; want 3, true, deadline exceeded", n, ok, err)
	}
}

// A write that fails closes its pipe at once and keeps it out of the
// pool: the bytes in it belong to a connection that has failed, and must
// reach no other, and the descriptors must not wait for a collection.
func TestSpliceCopyClosesAPipeWithBytes(t *testing.T) {
	src, in := pair(t)
	out, dst := pair(t)
	rc, _ := in.(*net.TCPConn).SyscallConn()
	wc, _ := out.(*net.TCPConn).SyscallConn()
	dst.(*net.TCPConn).SetLinger(0)
	dst.Close() // a reset: writes to out fail
	time.Sleep(20 * time.Millisecond)
	for range 3 { // the first write may still be accepted; the reset comes back on a later one
		src.Write(make([]byte, 64<<10))
	}
	before := openFDs(t)
	_, ok, err := spliceCopy(wc, rc, nil)
	if !ok || !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("spliceCopy to a reset conn = %v, %v; want EPIPE or ECONNRESET", ok, err)
	}
	// No collection here: a pipe dropped for one to close would still be open.
	if after := openFDs(t); after > before {
		t.Errorf("%d descriptors more after the failed copy: the pipe holding bytes was left open", after-before)
	}
	for range 4 {
		p := getPipe()
		if p == nil {
			t.Fatal("no pipe")
		}
		var b [1]byte
		if n, _ := syscall.Read(p.r, b[:]); n > 0 || p.held != 0 {
			t.Fatal("the pool gave out a pipe with bytes in it")
		}
		defer p.release()
	}
}

// Out of descriptors, a relay still relays: with no pipe to be had it
// copies another way (as io.Copy does) instead of failing the connection.
func TestRelayWithoutPipesCopiesAnotherWay(t *testing.T) {
	client, server, _ := relayed(t, context.Background())
	roundTripOnce := func(msg string) error {
		client.SetDeadline(time.Now().Add(5 * time.Second))
		server.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := client.Write([]byte(msg)); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(server, got); err != nil || string(got) != msg {
			return fmt.Errorf("server got %q, %v", got, err)
		}
		return nil
	}
	if err := roundTripOnce("before"); err != nil {
		t.Fatal(err)
	}
	// Empty the pipe pool (a collection drops its pipes), then fill the
	// descriptor table under a lowered limit (bounded: at most 64 above
	// what is open now), and restore both at the end.
	runtime.GC()
	runtime.GC()
	time.Sleep(50 * time.Millisecond) // for the cleanups that close the dropped pipes
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		testnet.SkipOrFail(t, "getrlimit: %v", err)
	}
	low := lim
	low.Cur = uint64(openFDs(t) + 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		testnet.SkipOrFail(t, "setrlimit: %v", err)
	}
	var fillers []int
	var held []*pipe
	defer func() {
		for _, fd := range fillers {
			syscall.Close(fd)
		}
		for _, p := range held {
			p.cleanup.Stop()
			closePipe([2]int{p.r, p.w})
		}
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}()
	// A pipe can still come after the collections above: a relay of an
	// earlier test that ends now gives its pipe back to the pool, or
	// frees descriptors for a new one. Hold each such pipe, and fill
	// again, until none is to be had.
	for {
		for range 200 {
			fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			if err != nil {
				break
			}
			fillers = append(fillers, fd)
		}
		p := getPipe()
		if p == nil {
			break
		}
		if held = append(held, p); len(held) > 16 {
			t.Fatal("pipes could still be made: the table does not fill")
		}
	}
	if err := roundTripOnce("out of descriptors"); err != nil {
		t.Fatalf("relay out of descriptors: %v", err)
	}
}

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		testnet.SkipOrFail(t, "no /proc/self/fd: %v", err)
	}
	return len(entries)
}

// A relayed connection that waits for data costs its sockets and no
// pipe: between bursts, while its splice window is still open (io.Copy's
// splice kept a pipe per direction for the whole window, 2 descriptors
// each: 80 here), and idle, after a whole window with nothing. Pipes
// given back wait in the pool, where a collection frees them (and the
// race detector's pool drops some on purpose).
func TestRelayHoldsNoPipesWhileWaiting(t *testing.T) {
	for _, tt := range []struct {
		name  string
		short bool // a short splice window
		wait  func() time.Duration
	}{
		{"between bursts", false, func() time.Duration { return 50 * time.Millisecond }},
		{"idle", true, func() time.Duration { return 2*spliceIdle + 500*time.Millisecond }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.short {
				shortIdle(t)
			}
			const relays = 20
			before := openFDs(t)
			var clients, servers []net.Conn
			for range relays {
				client, server, _ := relayed(t, context.Background())
				clients, servers = append(clients, client), append(servers, server)
			}
			// Some traffic both ways, so each direction has spliced once.
			for i := range relays {
				clients[i].Write([]byte("x"))
				servers[i].Write([]byte("y"))
				io.ReadFull(servers[i], make([]byte, 1))
				io.ReadFull(clients[i], make([]byte, 1))
			}
			time.Sleep(tt.wait())
			runtime.GC()
			runtime.GC()
			time.Sleep(100 * time.Millisecond)
			if extra := openFDs(t) - before - 4*relays; extra > 8 {
				t.Fatalf("%d relays hold %d descriptors beyond their 4 sockets each (splice pipes kept while waiting?)", relays, extra)
			}
		})
	}
}
