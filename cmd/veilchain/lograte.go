package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// rateHandler lets one log line of each kind through per interval and
// counts the rest: 4,000 connections failing the same way make one line
// every 10 s, each saying how many like it were held back (repeated=N),
// not 4,000 lines. A kind is the level, the message and every attribute
// but the client's address, which differs per connection. Debug lines
// always pass: whoever turns debug on wants them all.
type rateHandler struct {
	next  slog.Handler
	attrs string // the kind's part that With added
	state *rateState
}

type rateState struct {
	every time.Duration
	now   func() time.Time
	mu    sync.Mutex
	kinds map[string]*rateKind
}

type rateKind struct {
	last time.Time
	held int
}

// maxKinds bounds the table; past it, the oldest are forgotten.
const maxKinds = 4096

func newRateHandler(next slog.Handler, every time.Duration) *rateHandler {
	return &rateHandler{next: next, state: &rateState{every: every, now: time.Now, kinds: map[string]*rateKind{}}}
}

func (h *rateHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *rateHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelInfo {
		return h.next.Handle(ctx, r)
	}
	var key strings.Builder
	fmt.Fprintf(&key, "%s\x00%s\x00%s", r.Level, r.Message, h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "client" {
			fmt.Fprintf(&key, "\x00%s=%s", a.Key, a.Value)
		}
		return true
	})
	held, pass := h.state.allow(key.String())
	if !pass {
		return nil
	}
	if held > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeated", held))
	}
	return h.next.Handle(ctx, r)
}

// allow says whether a line of this kind goes out now, and how many were
// held back since the last that did.
func (s *rateState) allow(key string) (held int, pass bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	k := s.kinds[key]
	if k == nil {
		if len(s.kinds) >= maxKinds {
			for key, old := range s.kinds {
				if now.Sub(old.last) >= s.every {
					delete(s.kinds, key)
				}
			}
			if len(s.kinds) >= maxKinds {
				s.kinds = map[string]*rateKind{}
			}
		}
		s.kinds[key] = &rateKind{last: now}
		return 0, true
	}
	if now.Sub(k.last) < s.every {
		k.held++
		return 0, false
	}
	held, k.held, k.last = k.held, 0, now
	return held, true
}

func (h *rateHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var key strings.Builder
	key.WriteString(h.attrs)
	for _, a := range as {
		if a.Key != "client" {
			fmt.Fprintf(&key, "\x00%s=%s", a.Key, a.Value)
		}
	}
	return &rateHandler{next: h.next.WithAttrs(as), attrs: key.String(), state: h.state}
}

func (h *rateHandler) WithGroup(name string) slog.Handler {
	return &rateHandler{next: h.next.WithGroup(name), attrs: h.attrs + "\x00group=" + name, state: h.state}
}
