package stats

import "time"

// ExitStatus is the address the world sees a chain's connections come
// from, as an echo service answered through the chain.
type ExitStatus struct {
	Addr  string    `json:"addr,omitempty"`
	Error string    `json:"error,omitempty"` // the last ask failed: Addr is from before, if any
	At    time.Time `json:"at"`              // of the last ask
}

// SetExit records what asking an echo service through chain name found:
// its address, or err (which keeps the address found before).
func (r *Registry) SetExit(name, addr string, err error) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exits == nil {
		r.exits = map[string]ExitStatus{}
	}
	e := r.exits[name]
	e.At, e.Error = r.now(), ""
	if err != nil {
		e.Error = err.Error()
	} else {
		e.Addr = addr
	}
	r.exits[name] = e
}
