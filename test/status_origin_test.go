package test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veilchain/veilchain/internal/stats"
	"github.com/veilchain/veilchain/internal/statuspage"
)

// codeRecorder notes the status code of each response it passes on.
type codeRecorder struct {
	http.ResponseWriter
	code int
}

func (c *codeRecorder) WriteHeader(code int) {
	c.code = code
	c.ResponseWriter.WriteHeader(code)
}

// TestStatusPageUnreadableFromOtherOrigin: a page served from another
// loopback port (another origin, as a web page the user visits would
// be) fetches the status page and the metrics in a real Chromium, with
// CORS and without. The browser lets the script read neither (the CORS
// fetch fails, the no-cors one is opaque and empty), and the status
// server refused every one of those requests with 403. As controls, the
// same script reads its own origin, and the status page answers 200 to
// a request of its own.
func TestStatusPageUnreadableFromOtherOrigin(t *testing.T) {
	requireProgram(t, "chromium")
	reg := &stats.Registry{}
	reg.Started()
	_, d := reg.Dial(context.Background(), "main", "", "secret.example:443")
	d.Connected()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	statusURL := "http://" + ln.Addr().String()
	var mu sync.Mutex
	var seen []string // "path code"
	h := (&statuspage.Server{Stats: reg}).Handler(ln.Addr().String())
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &codeRecorder{ResponseWriter: w, code: 200}
		h.ServeHTTP(rec, r)
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %d", r.URL.Path, rec.code))
		mu.Unlock()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	script := `
const out = [];
async function attempt(name, url, opts) {
  try {
    const r = await fetch(url, opts);
    const text = await r.text();
    out.push(name + ":" + r.type + ":" + r.status + ":" + text.length + (text.includes("secret.example") ? ":DEST" : ""));
  } catch (e) {
    out.push(name + ":blocked");
  }
}
(async () => {
  await attempt("own", "/own", {});
  await attempt("page", "STATUS/", {cache: "no-store"});
  await attempt("metrics", "STATUS/metrics", {cache: "no-store"});
  await attempt("page-nocors", "STATUS/", {mode: "no-cors", cache: "no-store"});
  document.title = "done " + out.join(" ");
})();
`
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/own" {
			w.Write([]byte("own-data"))
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><html><head><title>pending</title></head><body><script>%s</script></body></html>",
			strings.ReplaceAll(script, "STATUS", statusURL))
	}))
	t.Cleanup(other.Close)

	dom := chromium(t, other.URL+"/", "--dump-dom", "--virtual-time-budget=10000")
	m := regexp.MustCompile(`<title>(.*?)</title>`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no title in the DOM:\n%s", dom)
	}
	want := "done own:basic:200:8 page:blocked metrics:blocked page-nocors:opaque:0:0"
	if m[1] != want {
		t.Errorf("the other origin's script got %q, want %q", m[1], want)
	}

	mu.Lock()
	got := append([]string(nil), seen...)
	mu.Unlock()
	t.Logf("the status server saw: %v", got)
	if len(got) < 3 {
		t.Fatalf("the status server saw %v, not the three requests the script sent", got)
	}
	for _, s := range got {
		if !strings.HasSuffix(s, " 403") {
			t.Errorf("the status server answered a request from the other origin: %q (all: %v)", s, got)
		}
	}
	// Control: the same server answers its own page.
	if !strings.Contains(httpGet(t, statusURL+"/"), "secret.example:443") {
		t.Error("the status page does not answer a request of its own")
	}
}
