package chain

import (
	"context"
	"sync/atomic"
	"time"
)

// Trace hears, during a dial, what the chain did: which chain a Router
// chose, each hop's handshake and the path a connection took. A front end
// puts one in the dial's context (WithTrace) to account for its
// connections; the chain knows nothing of what it is for. Any field may be
// nil. Hop may be called after DialContext returned (the replies of an
// early-answered chain come later) and from another goroutine: its
// implementation must be safe for that.
type Trace struct {
	// Chain is told the name of the chain a Router hands the dial to
	// ("direct" for a direct rule).
	Chain func(name string)
	// Hop is told of each finished handshake: the hop's 0-based place in
	// the path this attempt takes, its address and how long it took.
	Hop func(index int, addr string, took time.Duration)
	// Path is told, when a dial succeeds, the addresses of the hops the
	// connection took, in order (for a pool, the member it picked).
	Path func(addrs []string)
}

type traceKey struct{}

// WithTrace returns ctx carrying t.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// TraceFrom returns the Trace in ctx, or nil.
func TraceFrom(ctx context.Context) *Trace {
	t, _ := ctx.Value(traceKey{}).(*Trace)
	return t
}

func (t *Trace) chain(name string) {
	if t != nil && t.Chain != nil {
		t.Chain(name)
	}
}

// TellChain tells ctx's Trace, if any, the chain a dial goes to.
func TellChain(ctx context.Context, name string) { TraceFrom(ctx).chain(name) }

func (t *Trace) hop(i int, h Hop, took time.Duration) {
	if t != nil && t.Hop != nil {
		t.Hop(i, h.Addr(), took)
	}
}

func (t *Trace) path(hops []Hop) {
	if t != nil && t.Path != nil {
		addrs := make([]string, len(hops))
		for i, h := range hops {
			addrs[i] = h.Addr()
		}
		t.Path(addrs)
	}
}

// Counts are a relay's bytes so far: [0] from its first conn to its
// second, [1] back. A relay given Counts (WithCounts) adds to them once
// per copy call (each splice window, or at the end of a plain copy),
// never per byte, so a reader sees a live connection's traffic grow.
type Counts [2]atomic.Int64

type countsKey struct{}

// WithCounts returns ctx carrying c, for StartRelay and RelayIdle to add to.
func WithCounts(ctx context.Context, c *Counts) context.Context {
	return context.WithValue(ctx, countsKey{}, c)
}

func countsFrom(ctx context.Context) *Counts {
	c, _ := ctx.Value(countsKey{}).(*Counts)
	return c
}
