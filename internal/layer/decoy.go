package layer

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// decoyPage is what a prober reads when no decoy site is configured: the
// kind of page a freshly installed web server shows.
const decoyPage = `<!DOCTYPE html>
<html>
<head><title>Welcome</title></head>
<body>
<h1>Welcome</h1>
<p>This site is under construction.</p>
</body>
</html>
`

// Decoy is the web server behind a serve port for everyone the gate did
// not let through: a plain page, or, with site set, a reverse proxy to
// that site (--decoy), so a prober sees an ordinary website. A CONNECT
// gets what a web server that is not a proxy answers: 400.
func Decoy(site *url.URL) *http.Server {
	var page http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path != "/" {
			http.Error(w, "404 page not found", http.StatusNotFound)
			return
		}
		io.WriteString(w, decoyPage)
	})
	if site != nil {
		page = &httputil.ReverseProxy{
			// Rewrite, not Director: nothing about the prober is added.
			Rewrite:  func(pr *httputil.ProxyRequest) { pr.SetURL(site) },
			ErrorLog: log.New(io.Discard, "", 0),
		}
	}
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodConnect {
				http.Error(w, "400 Bad Request", http.StatusBadRequest)
				return
			}
			page.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 20 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
}

// ParseDecoy checks a --decoy URL.
func ParseDecoy(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--decoy %q: want an http:// or https:// URL of a site", raw)
	}
	return u, nil
}
