package chain

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veilchain/veilchain/internal/testnet"
)

// circuitLog is what a recordingExit saw of one connection.
type circuitLog struct {
	accepted  time.Time
	requested time.Time // zero until a request came
	user      string
	dest      string
	closed    bool // it ended before any request
}

// recordingExit is a SOCKS5 exit (no auth, or any user/password) that
// records each connection: when it came, who it authenticated as, when
// its request came and for what. drop says, by the connection's number
// (from 0), whether to close it right after the greeting; refuse whether
// to answer a request with "connection refused".
type recordingExit struct {
	addr   string
	mu     sync.Mutex
	conns  []*circuitLog
	drop   func(n int) bool
	refuse bool
}

func newRecordingExit(t *testing.T, drop func(int) bool, refuse bool) *recordingExit {
	x := &recordingExit{drop: drop, refuse: refuse}
	x.addr = testnet.Accept(t, x.serve)
	return x
}

func (x *recordingExit) serve(c net.Conn) {
	x.mu.Lock()
	n := len(x.conns)
	rec := &circuitLog{accepted: time.Now()}
	x.conns = append(x.conns, rec)
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		rec.closed = rec.requested.IsZero() // ended, one way or another, before any request
		x.mu.Unlock()
	}()
	buf := make([]byte, 600)
	if _, err := io.ReadFull(c, buf[:2]); err != nil {
		return
	}
	methods := buf[2 : 2+int(buf[1])]
	io.ReadFull(c, methods)
	if len(methods) > 0 && methods[0] == 2 {
		c.Write([]byte{5, 2})
		io.ReadFull(c, buf[:2])
		user := make([]byte, buf[1])
		io.ReadFull(c, user)
		io.ReadFull(c, buf[:1])
		io.ReadFull(c, make([]byte, buf[0]))
		x.mu.Lock()
		rec.user = string(user)
		x.mu.Unlock()
		c.Write([]byte{1, 0})
	} else {
		c.Write([]byte{5, 0})
	}
	if x.drop != nil && x.drop(n) {
		return
	}
	dest, err := readSOCKS5Request(c)
	if err != nil {
		return
	}
	x.mu.Lock()
	rec.requested, rec.dest = time.Now(), dest
	x.mu.Unlock()
	if x.refuse {
		c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
		return
	}
	connectAndRelay(c, dest)
}

// requests returns the logs of connections that carried a request.
func (x *recordingExit) requests() []circuitLog {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []circuitLog
	for _, r := range x.conns {
		if !r.requested.IsZero() {
			out = append(out, *r)
		}
	}
	slices.SortFunc(out, func(a, b circuitLog) int { return a.requested.Compare(b.requested) })
	return out
}

func (x *recordingExit) count() (accepted, closedUnused int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, r := range x.conns {
		if r.closed {
			closedUnused++
		}
	}
	return len(x.conns), closedUnused
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// startPrebuilt starts c's circuits, closes c at the end of the test, and
// waits until want circuits are ready.
func startPrebuilt(t *testing.T, c *Chain, want int) {
	t.Helper()
	if err := c.StartPrebuild(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	waitFor(t, strconv.Itoa(want)+" circuits", func() bool { return c.Prebuilt() == want })
}

func TestPrebuiltCircuitsCarryOneConnectionEach(t *testing.T) {
	echo := testnet.Echo(t)
	exit := newRecordingExit(t, nil, false)
	c := &Chain{Hops: []Hop{&SOCKS5{Address: socksHop(t, nil)}, &SOCKS5{Address: exit.addr}}, Prebuild: 2}
	startPrebuilt(t, c, 2)
	for i := range 3 {
		before := time.Now()
		dialAndEcho(t, c, echo) // a raw *net.TCPConn: the relay still splices
		reqs := exit.requests()
		if len(reqs) != i+1 {
			t.Fatalf("exit saw %d requests after %d dials", len(reqs), i+1)
		}
		if r := reqs[i]; !r.accepted.Before(before) || r.dest != echo {
			t.Errorf("dial %d: request for %s on a connection accepted %v after the dial began; want %s on one prebuilt before",
				i+1, r.dest, r.accepted.Sub(before), echo)
		}
		waitFor(t, "the circuits refilled", func() bool { return c.Prebuilt() == 2 })
	}
	// Three dials, three circuits: none carried a second request.
	accepted, _ := exit.count()
	if accepted != 5 {
		t.Errorf("exit accepted %d connections, want 5 (3 used, 2 ready)", accepted)
	}
}

func TestPrebuiltCircuitEarlyData(t *testing.T) {
	echo := testnet.Echo(t)
	exit := newRecordingExit(t, nil, false)
	c := &Chain{Hops: []Hop{&SOCKS5{Address: exit.addr, Pipeline: true}}, Prebuild: 1}
	startPrebuilt(t, c, 1)
	conn, err := c.DialContext(Optimistic(context.Background()), "tcp", echo)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, ok := conn.(*pendingConn); !ok {
		t.Fatalf("optimistic dial on a prebuilt circuit returned %T, want a pendingConn", conn)
	}
	echoHello(t, conn)
}

func TestPrebuiltCircuitKeepsTheExitsRefusal(t *testing.T) {
	exit := newRecordingExit(t, nil, true)
	c := &Chain{Hops: []Hop{&SOCKS5{Address: exit.addr}}, Prebuild: 1}
	startPrebuilt(t, c, 1)
	_, err := c.DialContext(context.Background(), "tcp", "example.invalid:80")
	var he *HopError
	var re *ReplyError
	if !errors.As(err, &he) || !he.Destination || !errors.As(err, &re) || re.Code != 5 {
		t.Fatalf("err = %v, want the exit's refusal (reply 5) as a HopError for the destination", err)
	}
	if n := len(exit.requests()); n != 1 {
		t.Errorf("exit saw %d requests, want 1: a refusal is an answer, not a broken circuit to retry", n)
	}
}

func TestBrokenPrebuiltCircuitFallsBackToANewDial(t *testing.T) {
	echo := testnet.Echo(t)
	// The exit closes the first two circuits right after their auth.
	exit := newRecordingExit(t, func(n int) bool { return n < 2 }, false)
	var logs strings.Builder
	c := &Chain{Hops: []Hop{&SOCKS5{Address: exit.addr}}, Prebuild: 2, Health: &Health{Logger: slog.New(slog.NewTextHandler(&logs, nil))}}
	startPrebuilt(t, c, 2)
	time.Sleep(50 * time.Millisecond) // the closes arrive
	dialAndEcho(t, c, echo)
	if n := len(exit.requests()); n != 1 {
		t.Errorf("exit saw %d requests, want 1", n)
	}
	if !strings.Contains(logs.String(), "set prebuild_idle below") {
		t.Errorf("no warning that a hop closes circuits early; log:\n%s", logs.String())
	}
}

func TestPrebuiltCircuitsExpireAndCloseWithTheChain(t *testing.T) {
	exit := newRecordingExit(t, nil, false)
	c := &Chain{Hops: []Hop{&SOCKS5{Address: exit.addr}}, Prebuild: 1, PrebuildIdle: 100 * time.Millisecond}
	startPrebuilt(t, c, 1)
	waitFor(t, "two idle circuits replaced", func() bool { _, closed := exit.count(); return closed >= 2 })
	if got := c.Prebuilt(); got > 1 {
		t.Errorf("%d circuits ready, want at most 1", got)
	}
	c.Close()
	accepted, closed := exit.count()
	waitFor(t, "the last circuit closed", func() bool { _, closed = exit.count(); return closed == accepted })
	if c.Prebuilt() != 0 {
		t.Errorf("%d circuits ready after Close", c.Prebuilt())
	}
}

func TestPrebuildGoesDormantWhenUnused(t *testing.T) {
	echo := testnet.Echo(t)
	exit := newRecordingExit(t, nil, false)
	c := &Chain{Hops: []Hop{&SOCKS5{Address: exit.addr}}, Prebuild: 1, PrebuildIdle: 50 * time.Millisecond, prebuildDormant: 300 * time.Millisecond}
	startPrebuilt(t, c, 1)
	time.Sleep(500 * time.Millisecond)
	settled, _ := exit.count()
	time.Sleep(300 * time.Millisecond)
	if accepted, _ := exit.count(); accepted != settled || c.Prebuilt() != 0 {
		t.Fatalf("after a dormant period: %d connections opened (was %d), %d ready; want no new ones", accepted, settled, c.Prebuilt())
	}
	dialAndEcho(t, c, echo) // a dial wakes it
	waitFor(t, "a circuit after the dial", func() bool { return c.Prebuilt() == 1 })
}

func TestPrebuiltCircuitsKeepIsolation(t *testing.T) {
	echo := testnet.Echo(t)
	exit := newRecordingExit(t, nil, false)
	h, err := ParseHop("socks5://" + exit.addr + "?isolate=user")
	if err != nil {
		t.Fatal(err)
	}
	c := &Chain{Hops: []Hop{h}, Prebuild: 1}
	if err := c.StartPrebuild(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	as := func(user string) context.Context {
		return WithOrigin(context.Background(), Origin{Listener: "l", User: user})
	}
	// Each user's first dial finds no circuit of theirs; later ones do.
	for _, user := range []string{"alice", "bob", "alice", "bob", "alice"} {
		conn, err := c.DialContext(as(user), "tcp", echo)
		if err != nil {
			t.Fatal(err)
		}
		echoHello(t, conn)
		conn.Close()
		time.Sleep(100 * time.Millisecond) // the user's circuit is rebuilt
	}
	reqs := exit.requests()
	if len(reqs) != 5 {
		t.Fatalf("exit saw %d requests, want 5", len(reqs))
	}
	alice, bob := reqs[0].user, reqs[1].user
	if alice == bob || alice == "" {
		t.Fatalf("alice and bob reached the exit as %q and %q", alice, bob)
	}
	for i, want := range []string{alice, bob, alice, bob, alice} {
		if reqs[i].user != want {
			t.Errorf("request %d came as %q, want %q: a circuit crossed users", i+1, reqs[i].user, want)
		}
	}
}

func TestPrebuildRefusesDestinationIsolation(t *testing.T) {
	h, err := ParseHop("socks5://127.0.0.1:1?isolate=destination")
	if err != nil {
		t.Fatal(err)
	}
	c := &Chain{Hops: []Hop{h}, Prebuild: 1}
	if err := c.StartPrebuild(context.Background()); err == nil {
		c.Close()
		t.Fatal("StartPrebuild took a hop that isolates by destination")
	}
}

// A first hop that leads back to this process is still found out when a
// prebuilt circuit's request comes, long after the circuit was dialled.
func TestPrebuiltCircuitStaysKnownToTheLoopGuard(t *testing.T) {
	g := &LoopGuard{}
	looped := make(chan bool, 1)
	hop := fakeServer(t, func(c net.Conn) {
		buf := make([]byte, 3)
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		c.Write([]byte{5, 0})
		if _, err := readSOCKS5Request(c); err != nil {
			return
		}
		looped <- g.Looped(c) // what a front end of ours asks before it dials
		c.Write([]byte{5, 1, 0, 1, 0, 0, 0, 0, 0, 0})
	})
	c := &Chain{Hops: []Hop{&SOCKS5{Address: hop}}, Prebuild: 1, LoopGuard: g}
	startPrebuilt(t, c, 1)
	time.Sleep(50 * time.Millisecond)
	c.DialContext(context.Background(), "tcp", "example.com:80")
	if !<-looped {
		t.Fatal("the request on a prebuilt circuit did not look like our own conn to the loop guard")
	}
}

// A hop that fails a prebuilt circuit's request (it timed out here) is
// not the end: the dial is made afresh and takes the pool's other member.
func TestPrebuiltCircuitFailureFallsBackToAnotherPath(t *testing.T) {
	echo := testnet.Echo(t)
	hang := fakeServer(t, func(c net.Conn) {
		buf := make([]byte, 3)
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		c.Write([]byte{5, 0})
		io.Copy(io.Discard, c) // takes the request, never answers
	})
	good := newRecordingExit(t, nil, false)
	health := &Health{}
	c := &Chain{Hops: []Hop{&Pool{Members: []Hop{&SOCKS5{Address: hang}, &SOCKS5{Address: good.addr}}}},
		Prebuild: 1, HandshakeTimeout: 300 * time.Millisecond, Health: health}
	startPrebuilt(t, c, 1)
	dialAndEcho(t, c, echo)
	if n := len(good.requests()); n != 1 {
		t.Fatalf("the other member saw %d requests, want 1", n)
	}
}

func TestPrebuildRefusesExitsThatTakeNothingFirst(t *testing.T) {
	for _, raw := range []string{"http://127.0.0.1:1", "socks4a://127.0.0.1:1"} {
		h, err := ParseHop(raw)
		if err != nil {
			t.Fatal(err)
		}
		c := &Chain{Hops: []Hop{h}, Prebuild: 1}
		if err := c.StartPrebuild(context.Background()); err == nil {
			c.Close()
			t.Errorf("StartPrebuild took the exit %s", raw)
		}
	}
}
