package conns

import (
	"errors"
	"io"
)

// CloseWrite half-closes c: it shuts down c's write side, so that the
// peer reads EOF while c can still read. It returns errors.ErrUnsupported,
// and leaves c open, when c cannot half-close (it has no CloseWrite). The
// one place that asks; relays, wrappers and front ends call it.
func CloseWrite(c any) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// EndWrite passes EOF on to c's peer: it half-closes c when c can, and
// closes it whole otherwise, the only other way to pass EOF on. For
// wrappers that must pass a half-close on to the conn they hold.
func EndWrite(c io.Closer) error {
	if err := CloseWrite(c); !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return c.Close()
}
