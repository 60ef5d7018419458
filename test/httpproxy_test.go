package test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// curlVia runs curl through the HTTP front end and returns its output.
func curlVia(t *testing.T, httpFront string, args ...string) string {
	t.Helper()
	curl := requireProgram(t, "curl")
	args = append([]string{"-sS", "--max-time", "10", "-x", "http://" + httpFront}, args...)
	out, err := exec.Command(curl, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestCurlHTTPProxy drives curl -x through `run`'s HTTP front end and two
// `serve` hops, to plain-HTTP and HTTPS destinations, and checks exactly
// what each destination received.
func TestCurlHTTPProxy(t *testing.T) {
	requireProgram(t, "curl")
	plain, secure := newDestination(t), newTLSDestination(t)
	_, httpFront, _ := frontEnds(t)
	leaky := []string{
		"-A", "test-agent/1",
		"-H", "X-Forwarded-For: 127.0.0.1", "-H", "Via: 1.1 client-proxy", "-H", "Forwarded: for=127.0.0.1",
		"-H", "X-Real-IP: 127.0.0.1", "-H", "Client-IP: 127.0.0.1", "-H", "From: me@example.com",
		"-H", "Proxy-Connection: keep-alive",
	}

	t.Run("http", func(t *testing.T) {
		// Two URLs in one curl: one client connection, one chain connection.
		url := "http://" + destName + ":" + plain.port + "/"
		out := curlVia(t, httpFront, append(leaky, url+"a", url+"b")...)
		if strings.Count(out, "peer 127.0.0.2:") != 2 {
			t.Fatalf("responses %q: want two, each seeing the exit 127.0.0.2", out)
		}
		for _, h := range plain.seenHeaders() {
			if got, want := fmt.Sprint(h), fmt.Sprint(map[string][]string{"Accept": {"*/*"}, "User-Agent": {"test-agent/1"}}); got != want {
				t.Errorf("destination received headers %s, want exactly %s", got, want)
			}
		}
		if n := plain.accepted.Load(); n != 1 {
			t.Errorf("destination accepted %d connections for two requests, want 1 (kept alive through the chain)", n)
		}
	})

	t.Run("https", func(t *testing.T) {
		// Through CONNECT the request is end to end (TLS): the proxy sees
		// and changes nothing in it; the destination still sees the exit.
		out := curlVia(t, httpFront, "-k", "-A", "test-agent/1", "https://"+destName+":"+secure.port+"/")
		if !strings.HasPrefix(out, "peer 127.0.0.2:") {
			t.Fatalf("response %q: want the exit 127.0.0.2 as the peer", out)
		}
		if h := secure.seenHeaders(); len(h) != 1 || strings.Contains(fmt.Sprint(h), "127.0.0.1") {
			t.Fatalf("HTTPS destination received %v", h)
		}
	})
}

// TestHTTPProxyFailClosed: with the first hop down, curl gets 502 naming
// the hop, and nothing reaches the destination.
func TestHTTPProxyFailClosed(t *testing.T) {
	curl := requireProgram(t, "curl")
	dest := newDestination(t)
	run := start(t, "run", "--socks", "", "--http", "127.0.0.1:0", "--hop", "socks5://"+closedPort(t), "--log-format", "json")
	front := run.waitFor(t, "HTTP proxy front end listening")["addr"].(string)
	for _, url := range []string{"http://" + destName + ":" + dest.port + "/", "https://" + destName + ":" + dest.port + "/"} {
		// %{http_connect} is the CONNECT answer, whose body curl does not show.
		out, _ := exec.Command(curl, "-s", "--max-time", "10", "-o", "-", "-w", "\n%{http_code} %{http_connect}", "-x", "http://"+front, url).CombinedOutput()
		switch {
		case strings.HasPrefix(url, "http:") && (!strings.Contains(string(out), "hop 1") || !strings.HasSuffix(string(out), "502 000")):
			t.Errorf("%s: curl got %q, want a 502 naming hop 1", url, out)
		case strings.HasPrefix(url, "https:") && !strings.HasSuffix(string(out), "000 502"):
			t.Errorf("%s: curl got %q, want CONNECT answered with 502", url, out)
		}
	}
	if n := dest.accepted.Load(); n != 0 {
		t.Fatalf("destination accepted %d connections", n)
	}
}
