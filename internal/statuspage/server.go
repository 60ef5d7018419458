// Package statuspage serves a running veilchain's status on an opt-in
// loopback address: Prometheus metrics at /metrics and a page for people
// at /. Both read a stats.Registry. It answers only requests addressed to
// its own address by name or number (a DNS rebinding attack sends a
// foreign Host) and from no other web origin, so a web page the user
// visits cannot read it.
package statuspage

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/veilchain/veilchain/chain"
	"github.com/veilchain/veilchain/internal/stats"
)

// Server serves the status page and the metrics.
type Server struct {
	Stats *stats.Registry
	// PID is shown on the page.
	PID int
	// Throughput is the page's graph: Serve samples Stats into it, in
	// one goroutine that Shutdown ends. Its zero value keeps five
	// minutes of seconds.
	Throughput stats.Throughput
	// ExitEcho, if set, asks an echo service through a chain for the
	// address the world sees (cmd builds it from status_echo_url). Serve
	// asks through each chain, never directly, at the start and then
	// every ExitEvery (0: a minute), in one goroutine Shutdown ends; each
	// ask gets 15 s.
	ExitEcho  func(ctx context.Context, through chain.Dialer) (string, error)
	ExitEvery time.Duration
	// Auth, if set, is asked of every request's Basic credentials (with
	// its source address); without them, or wrong ones, it gets 401. cmd
	// sets it for a status address off loopback: the page shows
	// destinations.
	Auth func(source, user, password string) bool

	mu      sync.Mutex
	srv     *http.Server
	closed  bool
	stop    context.CancelFunc // the sampler's and the exit asker's
	sampled chan struct{}      // closed when both have returned
}

// Handler answers for a server listening on addr (host:port as bound).
func (s *Server) Handler(addr string) http.Handler {
	metrics := prometheus.NewRegistry() // ours alone: no global registry
	metrics.MustRegister(s.Stats.Collector())
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /{$}", s.page)
	var h http.Handler = mux
	if s.Auth != nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if user, pass, ok := r.BasicAuth(); !ok || !s.Auth(r.RemoteAddr, user, pass) {
				w.Header().Set("WWW-Authenticate", `Basic realm="veilchain status", charset="UTF-8"`)
				http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
				return
			}
			mux.ServeHTTP(w, r)
		})
	}
	return guard(addr, h)
}

// Serve answers on ln, and samples the throughput for the graph, until
// Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	srv := &http.Server{Handler: s.Handler(ln.Addr().String()), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := context.WithCancel(context.Background()) // the server owns the sampler; Shutdown ends it
	s.srv, s.stop, s.sampled = srv, stop, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		if s.ExitEcho != nil {
			asked := make(chan struct{})
			go func() {
				defer close(asked)
				s.askExits(ctx)
			}()
			defer func() { <-asked }()
		}
		s.Throughput.Run(ctx, s.Stats)
	}(s.sampled)
	s.mu.Unlock()
	return srv.Serve(ln)
}

// Shutdown stops answering, sampling and asking; it returns once the
// sampler and the asker have.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	srv, stop, sampled := s.srv, s.stop, s.sampled
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	stop()
	<-sampled
	return srv.Shutdown(ctx)
}

// allowedHosts are the Host values a request to addr may carry: the
// address itself, and localhost and the loopback numbers at its port.
func allowedHosts(addr string) map[string]bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return map[string]bool{strings.ToLower(addr): true}
	}
	hosts := map[string]bool{strings.ToLower(net.JoinHostPort(host, port)): true}
	if ip := net.ParseIP(host); ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
		for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
			hosts[net.JoinHostPort(h, port)] = true
		}
	}
	return hosts
}

// guard refuses (403) a request whose Host is not one of ours (DNS
// rebinding: a name the attacker controls, pointed at 127.0.0.1), or
// that carries an Origin (or a Sec-Fetch-Site) saying another web page
// sent it.
func guard(addr string, next http.Handler) http.Handler {
	hosts := allowedHosts(addr)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hosts[strings.ToLower(r.Host)] {
			http.Error(w, "veilchain: this status address answers only to its own name (Host "+r.Host+" refused)", http.StatusForbidden)
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !hosts[strings.ToLower(strings.TrimPrefix(o, "http://"))] {
			http.Error(w, "veilchain: requests from other web origins are refused", http.StatusForbidden)
			return
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
			http.Error(w, "veilchain: requests from other web origins are refused", http.StatusForbidden)
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cross-Origin-Resource-Policy", "same-origin")
		w.Header().Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}
