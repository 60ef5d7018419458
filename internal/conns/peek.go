package conns

import "errors"

// ErrNoPeek is Peek's answer for a conn it cannot peek at, and on every
// conn where there is no peeking (see canPeek in peek_*.go).
var ErrNoPeek = errors.New("cannot peek at this conn")
