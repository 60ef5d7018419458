package resolver

import (
	"sync"
	"time"

	"github.com/miekg/dns"
)

// cache keeps forwarded answers for their TTL, at most maxCached of them.
type cache struct {
	mu      sync.Mutex
	entries map[string]cached
}

type cached struct {
	msg     *dns.Msg
	stored  time.Time
	expires time.Time
}

const (
	maxCached   = 4096
	maxCacheTTL = time.Hour
	negativeTTL = 60 * time.Second
)

// put stores m for the smallest TTL of its records (negative answers and
// answers without records for a minute).
func (c *cache) put(key string, m *dns.Msg) {
	if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError || m.Truncated {
		return
	}
	ttl := maxCacheTTL
	if len(m.Answer) == 0 {
		ttl = negativeTTL
	}
	for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
		for _, r := range sec {
			ttl = min(ttl, time.Duration(r.Header().Ttl)*time.Second)
		}
	}
	if ttl <= 0 {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]cached{}
	}
	if len(c.entries) >= maxCached {
		for k, e := range c.entries { // drop the expired, or else any one
			if now.After(e.expires) || len(c.entries) >= maxCached {
				delete(c.entries, k)
			}
			if len(c.entries) < maxCached*3/4 {
				break
			}
		}
	}
	c.entries[key] = cached{msg: m.Copy(), stored: now, expires: now.Add(ttl)}
}

// get returns a copy of a live entry with its TTLs counted down.
func (c *cache) get(key string) *dns.Msg {
	c.mu.Lock()
	e, ok := c.entries[key]
	if ok && time.Now().After(e.expires) {
		delete(c.entries, key)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return nil
	}
	m := e.msg.Copy()
	age := uint32(time.Since(e.stored) / time.Second)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, r := range sec {
			if h := r.Header(); h.Rrtype != dns.TypeOPT {
				h.Ttl -= min(h.Ttl, age)
			}
		}
	}
	return m
}
