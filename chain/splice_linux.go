//go:build !portable

package chain

import (
	"os"
	"runtime"
	"sync"
	"syscall"
)

// spliceCopy moves bytes from src to dst through a pipe with splice(2),
// like io.Copy between two *net.TCPConns, until src's EOF, an error, or
// src's read deadline. The difference is when it holds the pipe: only
// while bytes are in flight. io.Copy takes a pipe for the whole call and
// keeps it while it waits for src, so every direction that had carried a
// byte in the last splice window kept two descriptors more. One process
// playing front end and both hops (six sockets per relayed connection,
// plus up to six pipes) ran out of descriptors at 1,766 connections
// opened in a row; it now needs its six sockets.
//
// It reports ok=false when it cannot go on: the kernel cannot splice
// these descriptors (then before any byte), or there is no pipe to be had
// (out of descriptors). The caller then copies the rest another way, as
// io.Copy does: a connection must not die of a full descriptor table.
// Each splice call that moves bytes is reported to w, if not nil.
func spliceCopy(dst, src syscall.RawConn, w *window) (written int64, ok bool, err error) {
	var p *pipe
	defer func() {
		if p != nil {
			p.release()
		}
	}()
	// The two steps are made once per call, not once per chunk: a
	// closure handed to Read or Write is allocated each time it is made.
	var n int
	var serr error
	noPipe := false
	fill := func(fd uintptr) bool { // src to pipe, waiting for src without a pipe
		if p == nil {
			if p = getPipe(); p == nil {
				noPipe = true
				return true
			}
		}
		n, serr = splice(int(fd), p.w, pipeSize)
		if serr == syscall.EAGAIN {
			p.release() // empty: back to the pool while we wait
			p = nil
			return false
		}
		return true
	}
	drain := func(fd uintptr) bool { // pipe to dst
		n, serr = splice(p.r, int(fd), p.held)
		return serr != syscall.EAGAIN
	}
	for {
		rerr := src.Read(fill)
		switch {
		case rerr != nil:
			return written, true, rerr
		case noPipe:
			return written, false, nil
		case serr == syscall.EINVAL && written == 0:
			return 0, false, nil // these descriptors cannot splice
		case serr != nil:
			return written, true, os.NewSyscallError("splice", serr)
		case n == 0:
			return written, true, nil // EOF
		}
		p.held = n
		// All of it goes to dst: the pipe goes back empty or not at all.
		for p.held > 0 {
			werr := dst.Write(drain)
			if werr == nil && serr != nil {
				werr = os.NewSyscallError("splice", serr)
			}
			if werr != nil {
				return written, true, werr
			}
			p.held -= n
			written += int64(n)
			w.moving(n)
		}
	}
}

// splice moves up to n bytes from in to out without blocking on the pipe
// (the sockets are non-blocking already), retrying on EINTR.
func splice(in, out, n int) (int, error) {
	for {
		m, err := syscall.Splice(in, nil, out, nil, n, spliceMove|spliceNonblock)
		if err != syscall.EINTR {
			return int(m), err
		}
	}
}

const (
	spliceMove     = 0x1 // SPLICE_F_MOVE
	spliceNonblock = 0x2 // SPLICE_F_NONBLOCK
	// pipeSize is what each pipe is asked to hold, and the most one
	// splice moves: a bulk transfer moves this much per pair of calls.
	pipeSize = 1 << 20
)

// pipe is a kernel pipe used to splice; held is how many bytes are in it.
type pipe struct {
	r, w    int
	held    int
	cleanup runtime.Cleanup // closes r and w if the pool drops the pipe
}

// pipes keeps empty pipes for the next splice. The pool drops pipes at
// garbage collections; a cleanup closes each pipe it drops.
var pipes sync.Pool

// getPipe returns an empty pipe, or nil if none can be made.
func getPipe() *pipe {
	if p, ok := pipes.Get().(*pipe); ok {
		return p
	}
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return nil
	}
	// A bigger pipe moves more per call; without the permission to grow
	// it, the default 64 KiB still works.
	syscall.Syscall(syscall.SYS_FCNTL, uintptr(fds[0]), syscall.F_SETPIPE_SZ, pipeSize)
	p := &pipe{r: fds[0], w: fds[1]}
	p.cleanup = runtime.AddCleanup(p, closePipe, fds)
	return p
}

func closePipe(fds [2]int) {
	syscall.Close(fds[0])
	syscall.Close(fds[1])
}

// release gives an empty pipe back to the pool. One with bytes still in
// it (a write failed halfway) is closed at once: those bytes belong to a
// connection that has failed, and a client that drops a download
// halfway must not leave 2 descriptors and up to a pipe's worth of
// kernel memory behind until the next collection.
func (p *pipe) release() {
	if p.held == 0 {
		pipes.Put(p)
		return
	}
	p.cleanup.Stop()
	closePipe([2]int{p.r, p.w})
}
