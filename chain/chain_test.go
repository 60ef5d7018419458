package chain

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veilchain/veilchain/internal/testnet"
)

// socksHop is a minimal no-auth SOCKS5 hop that connects onward with
// net.Dial and records the addresses it was asked for.
func socksHop(t *testing.T, asked chan<- string) string {
	return fakeServer(t, func(c net.Conn) {
		buf := make([]byte, 262)
		if _, err := io.ReadFull(c, buf[:3]); err != nil {
			return
		}
		c.Write([]byte{5, 0})
		addr, err := readSOCKS5Request(c)
		if err != nil {
			return
		}
		if asked != nil {
			asked <- addr
		}
		connectAndRelay(c, addr)
	})
}

// connectAndRelay is a SOCKS5 hop's last step: it connects to addr,
// replies, and relays.
func connectAndRelay(c net.Conn, addr string) {
	next, err := net.Dial("tcp", addr)
	if err != nil {
		c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
		return
	}
	defer next.Close()
	c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	Relay(context.Background(), c, next)
}

// readSOCKS5Request reads a CONNECT request for an IPv4 address or a
// name, and returns it as host:port.
func readSOCKS5Request(c net.Conn) (string, error) {
	buf := make([]byte, 262)
	if _, err := io.ReadFull(c, buf[:5]); err != nil {
		return "", err
	}
	var host string
	switch buf[3] {
	case 1:
		io.ReadFull(c, buf[5:10])
		host = net.IP(buf[4:8]).String()
		buf[0], buf[1] = buf[8], buf[9]
	case 3:
		n := int(buf[4])
		io.ReadFull(c, buf[5:5+n+2])
		host = string(buf[5 : 5+n])
		buf[0], buf[1] = buf[5+n], buf[6+n]
	}
	return net.JoinHostPort(host, strconv.Itoa(int(buf[0])<<8|int(buf[1]))), nil
}

func TestChainThroughTwoHops(t *testing.T) {
	echo := testnet.Echo(t)
	asked1, asked2 := make(chan string, 1), make(chan string, 1)
	h1, h2 := socksHop(t, asked1), socksHop(t, asked2)
	_, echoPort, _ := net.SplitHostPort(echo)
	c := &Chain{Hops: []Hop{&SOCKS5{Address: h1}, &SOCKS5{Address: h2}}}
	// "localhost" must reach the exit as a name; only it resolves.
	conn, err := c.DialContext(context.Background(), "tcp", "localhost:"+echoPort)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := <-asked1; got != h2 {
		t.Errorf("hop 1 was asked for %q, want hop 2 %q", got, h2)
	}
	if got := <-asked2; got != "localhost:"+echoPort {
		t.Errorf("exit was asked for %q, want the name localhost:%s", got, echoPort)
	}
	if _, ok := conn.(*net.TCPConn); !ok {
		t.Errorf("chain returned %T, want *net.TCPConn so the relay can splice", conn)
	}
	conn.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo = %q, %v", buf, err)
	}
}

func TestChainFailures(t *testing.T) {
	deadLn, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := deadLn.Addr().String()
	deadLn.Close()
	silent := fakeServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	exit := socksHop(t, nil)

	tests := []struct {
		name  string
		hops  []string
		index int
		check func(error) bool
	}{
		{"first hop refuses", []string{closed, exit}, 0, func(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }},
		{"second hop refuses", []string{exit, closed}, 0, func(err error) bool {
			var re *ReplyError
			return errors.As(err, &re) && re.Code == 5 && strings.Contains(err.Error(), "hop 1 ("+exit+"): reaching hop 2: connection refused")
		}},
		{"second hop silent", []string{exit, silent}, 1, func(err error) bool {
			return errors.Is(err, context.DeadlineExceeded)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Chain{HandshakeTimeout: 200 * time.Millisecond}
			for _, h := range tt.hops {
				c.Hops = append(c.Hops, &SOCKS5{Address: h})
			}
			start := time.Now()
			conn, err := c.DialContext(context.Background(), "tcp", "192.0.2.1:80")
			if err == nil {
				conn.Close()
				t.Fatal("dial succeeded")
			}
			var he *HopError
			if !errors.As(err, &he) || he.Index != tt.index || he.Addr != tt.hops[tt.index] {
				t.Fatalf("err = %v, want HopError for hop index %d (%s)", err, tt.index, tt.hops[tt.index])
			}
			if !tt.check(err) {
				t.Fatalf("err = %v: wrong cause", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("failure took %v", d)
			}
		})
	}
}

func TestChainCancelEndsHandshake(t *testing.T) {
	silent := fakeServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	c := &Chain{Hops: []Hop{&SOCKS5{Address: silent}}, HandshakeTimeout: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := c.DialContext(ctx, "tcp", "192.0.2.1:80")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestChainRefusesWithoutHopsAndNonTCP(t *testing.T) {
	if _, err := (&Chain{}).DialContext(context.Background(), "tcp", "example.com:80"); !errors.Is(err, ErrNoHops) {
		t.Errorf("no hops: err = %v, want ErrNoHops", err)
	}
	c := &Chain{Hops: []Hop{&SOCKS5{Address: "127.0.0.1:1"}}}
	if _, err := c.DialContext(context.Background(), "udp", "example.com:53"); err == nil {
		t.Error("udp dial succeeded")
	}
}

// mapResolver answers from a map and records the names it is asked for.
type mapResolver struct {
	mu    sync.Mutex
	addrs map[string][]netip.Addr
	asked []string
}

func (r *mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, host)
	if a, ok := r.addrs[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// The first hop's name is looked up with the chain's own Resolver (and
// nothing else is): the next address is tried when one fails.
func TestChainResolverLooksUpTheFirstHop(t *testing.T) {
	echo := testnet.Echo(t)
	_, hopPort, _ := net.SplitHostPort(socksHop(t, nil))
	// Nothing listens on 127.0.0.2: the first address is refused.
	r := &mapResolver{addrs: map[string][]netip.Addr{"hop.test": {netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.1")}}}
	for _, tt := range []struct {
		name, hop string
		wantErr   string
	}{
		{"name", "hop.test", ""},
		{"unknown name", "nohop.test", "looking up hop nohop.test: lookup nohop.test: no such host"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &Chain{Resolver: r, Hops: []Hop{&SOCKS5{Address: net.JoinHostPort(tt.hop, hopPort)}}}
			conn, err := c.DialContext(context.Background(), "tcp", echo)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			conn.Close()
		})
	}
	if want := []string{"hop.test", "nohop.test"}; !slices.Equal(r.asked, want) {
		t.Fatalf("resolver asked for %q, want %q", r.asked, want)
	}
}

// HopError.Destination tells an exit's answer about the destination from
// a hop's answer about the next hop.
func TestHopErrorDestination(t *testing.T) {
	deadLn, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := deadLn.Addr().String()
	deadLn.Close()
	exit := socksHop(t, nil)
	for _, tt := range []struct {
		name string
		hops []string
		want bool
	}{
		{"exit cannot reach the destination", []string{exit}, true},
		{"exit of two cannot reach the destination", []string{exit, exit}, true},
		{"hop 1 cannot reach hop 2", []string{exit, closed}, false},
		{"hop 1 down", []string{closed, exit}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &Chain{}
			for _, h := range tt.hops {
				c.Hops = append(c.Hops, &SOCKS5{Address: h})
			}
			_, err := c.DialContext(context.Background(), "tcp", closed)
			hop, ok := errors.AsType[*HopError](err)
			if !ok || hop.Destination != tt.want {
				t.Fatalf("err = %v (%+v), want Destination %t", err, hop, tt.want)
			}
		})
	}
}
