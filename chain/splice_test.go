package chain

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
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
	n, ok, err := spliceCopy(wc, rc)
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
	n, ok, err = spliceCopy(discard, rc2)
	if !ok || n != 3 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("at the deadline: spliceCopy = %d, %v, %v; want 3, true, deadline exceeded", n, ok, err)
	}
}

// A write that fails leaves its pipe out of the pool: the bytes in it
// belong to a connection that has failed, and must not reach another.
func TestSpliceCopyDropsAPipeWithBytes(t *testing.T) {
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
	_, ok, err := spliceCopy(wc, rc)
	if !ok || !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("spliceCopy to a reset conn = %v, %v; want EPIPE or ECONNRESET", ok, err)
	}
	for range 4 {
		p, err := getPipe()
		if err != nil {
			t.Fatal(err)
		}
		if p.held != 0 {
			t.Fatalf("the pool gave out a pipe holding %d bytes", p.held)
		}
		var b [1]byte
		if n, _ := syscall.Read(p.r, b[:]); n > 0 {
			t.Fatal("the pool gave out a pipe with bytes in it")
		}
		defer p.release()
	}
}
