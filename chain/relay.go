package chain

import (
	"context"
	"errors"
	"io"
)

// Relay copies a→b and b→a until both directions have ended, then returns
// the byte counts. When one direction reaches EOF, the write side of the
// other conn is closed (half-close) and the opposite direction goes on;
// when one fails, both conns are closed so the other direction ends too.
// Cancelling ctx closes both conns. The caller still owns a and b. They
// are usually net.Conns; any stream works (an upgraded HTTP body, say), and
// one without CloseWrite is closed whole when its direction ends.
//
// Pass the conns as they are: io.Copy between two *net.TCPConn splices on
// Linux, and a wrapper that hides ReadFrom/WriteTo turns that into a
// user-space copy.
func Relay(ctx context.Context, a, b io.ReadWriteCloser) (aToB, bToA int64, err error) {
	closeBoth := func() {
		a.Close()
		b.Close()
	}
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()

	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := copyHalf(b, a, closeBoth)
		done <- result{n, err}
	}()
	bToA, errBA := copyHalf(a, b, closeBoth)
	r := <-done
	aToB = r.n
	if ctx.Err() != nil {
		return aToB, bToA, ctx.Err()
	}
	return aToB, bToA, errors.Join(r.err, errBA)
}

// copyHalf copies src to dst, then half-closes dst, or on error closes both.
func copyHalf(dst, src io.ReadWriteCloser, closeBoth func()) (int64, error) {
	n, err := io.Copy(dst, src)
	if err != nil {
		closeBoth()
		return n, err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return n, nil
		}
	}
	// dst cannot half-close: closing it whole is the only way to pass EOF on.
	closeBoth()
	return n, nil
}
