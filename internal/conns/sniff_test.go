package conns

import (
	"io"
	"net"
	"testing"
	"time"
)

func TestSniffRoutesByFirstByte(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	socks, http := Sniff(ln, 500*time.Millisecond)
	defer socks.Close()
	defer http.Close()
	for _, tt := range []struct {
		first []byte
		want  net.Listener
	}{
		{[]byte{5, 1, 0}, socks},
		{[]byte{4, 1, 0, 80}, socks},
		{[]byte("CONNECT a:1 HTTP/1.1\r\n"), http},
		{[]byte("GET http://a/ HTTP/1.1\r\n"), http},
	} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		// Partial first read: one byte now, the rest later.
		c.Write(tt.first[:1])
		time.Sleep(10 * time.Millisecond)
		c.Write(tt.first[1:])
		got, err := tt.want.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got.(*net.TCPConn); !ok {
			t.Fatalf("handed a %T, want the raw *net.TCPConn", got)
		}
		buf := make([]byte, len(tt.first))
		got.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(got, buf); err != nil || string(buf) != string(tt.first) {
			t.Fatalf("server read %q, %v: the peeked byte must still be there", buf, err)
		}
		got.Close()
		c.Close()
	}
}

func TestSniffDropsSilentClients(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	socks, http := Sniff(ln, 100*time.Millisecond)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent client: read err %v, want EOF (closed by the sniffer)", err)
	}
	socks.Close()
	http.Close()
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("parent listener still open after both children closed")
	}
	if _, err := socks.Accept(); err == nil {
		t.Fatal("Accept after Close succeeded")
	}
}
