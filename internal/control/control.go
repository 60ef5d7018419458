// Package control is the local control endpoint of a running veilchain:
// JSON over HTTP on a Unix socket that only its user can open (a socket
// file in a 0700 directory under the user's config dir; Windows has
// AF_UNIX sockets too, and the profile's ACLs keep others out). It is how
// `veilchain reload` reaches a running `run` on every platform, SIGHUP or
// not, and the base a status view builds on. Routes are versioned: /v1/.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// DefaultPath is where a run's control socket lives unless told
// otherwise: <user config dir>/veilchain/control.sock.
func DefaultPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "veilchain", "control.sock"), nil
}

// ErrInUse means another process answers on the socket already.
var ErrInUse = errors.New("another veilchain answers on this control socket")

// Listen makes the socket at path, in a directory only this user can
// enter. A socket left by a process that is gone is replaced; one that
// answers is not.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w", path, ErrInUse)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// Server answers on the control socket. Its zero value answers 404s.
type Server struct {
	// Reload applies the config again; its error says why it did not.
	Reload func() error
	// Status is what GET /v1/status answers, as JSON.
	Status func() any

	srv *http.Server
}

// Result is the answer to a request that does something.
type Result struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		if s.Reload == nil {
			http.NotFound(w, r)
			return
		}
		res := Result{OK: true}
		if err := s.Reload(); err != nil {
			res = Result{Error: err.Error()}
		}
		writeJSON(w, res)
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		if s.Status == nil {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, s.Status())
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// Serve answers on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.srv = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second}
	return s.srv.Serve(ln)
}

// Shutdown stops answering; the socket file goes with the listener.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
}

// Call sends one request to the control socket at path and decodes the
// JSON answer into out.
func Call(ctx context.Context, path, method, route string, out any) error {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, method, "http://veilchain"+route, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("no veilchain answers on %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", method, route, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
