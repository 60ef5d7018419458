package httpproxy

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/veilchain/veilchain/internal/testnet"
)

// GET /proxy.pac in origin form gets the PAC file; every other request
// for the proxy itself still gets 400, as does /proxy.pac without a PAC,
// and an absolute-form request for a /proxy.pac goes to its destination.
func TestServesPAC(t *testing.T) {
	o := newOrigin(t)
	pac := "function FindProxyForURL(url, host) { return \"PROXY 127.0.0.1:8118\"; }\n"
	withPAC := testnet.Serve(t, &Server{Dialer: &fakeChain{target: o.addr}, PAC: func() []byte { return []byte(pac) }})
	without := testnet.Serve(t, &Server{Dialer: &fakeChain{target: o.addr}})
	for _, tt := range []struct {
		name, proxy, req string
		code             int
		body             string
	}{
		{"the PAC", withPAC, "GET /proxy.pac HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 200, pac},
		{"the PAC, HTTP/1.0", withPAC, "GET /proxy.pac HTTP/1.0\r\n\r\n", 200, pac},
		{"another path", withPAC, "GET /wpad.dat HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, ""},
		{"the root", withPAC, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, ""},
		{"POST", withPAC, "POST /proxy.pac HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n", 400, ""},
		{"no PAC configured", without, "GET /proxy.pac HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, ""},
		{"absolute form is forwarded", withPAC, "GET http://d.example/proxy.pac HTTP/1.1\r\nHost: d.example\r\n\r\n", 200, "hello"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, br := rawConn(t, tt.proxy)
			fmt.Fprint(c, tt.req)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.code)
			}
			if tt.code == 200 && tt.body == pac {
				if ct := resp.Header.Get("Content-Type"); ct != "application/x-ns-proxy-autoconfig" {
					t.Errorf("Content-Type %q", ct)
				}
				if string(body) != pac {
					t.Errorf("body %q, want the PAC", body)
				}
			}
			if tt.body == "hello" && string(body) == pac {
				t.Errorf("an absolute-form request got the PAC")
			}
		})
	}
}
