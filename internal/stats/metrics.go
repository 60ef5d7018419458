package stats

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// The metrics' descriptions. Labels are listener, chain, hop position,
// pool member index and direction only: never a destination, a user name
// or a client address (see the package comment).
func connLabels(kind string) []string {
	switch kind {
	case "listener":
		return []string{"listener"}
	case "chain":
		return []string{"chain"}
	}
	return []string{"chain", "position"}
}

type descs struct {
	open, total, failed, bytes, latency map[string]*prometheus.Desc
	hopUp, hopLatency                   *prometheus.Desc
}

func newDescs() *descs {
	d := &descs{open: map[string]*prometheus.Desc{}, total: map[string]*prometheus.Desc{},
		failed: map[string]*prometheus.Desc{}, bytes: map[string]*prometheus.Desc{}, latency: map[string]*prometheus.Desc{}}
	for _, kind := range []string{"listener", "chain", "hop"} {
		labels := connLabels(kind)
		what := map[string]string{"listener": "listener", "chain": "chain", "hop": "hop position of a chain"}[kind]
		d.open[kind] = prometheus.NewDesc("veilchain_"+kind+"_connections_open", "Connections open now, per "+what+".", labels, nil)
		d.total[kind] = prometheus.NewDesc("veilchain_"+kind+"_connections_total", "Connections made, per "+what+".", labels, nil)
		d.failed[kind] = prometheus.NewDesc("veilchain_"+kind+"_connections_failed_total", "Connections that failed to be made, per "+what+".", labels, nil)
		d.bytes[kind] = prometheus.NewDesc("veilchain_"+kind+"_bytes_total", "Bytes relayed, per "+what+" and direction (up: from the client).",
			append(append([]string(nil), labels...), "direction"), nil)
	}
	d.latency["listener"] = prometheus.NewDesc("veilchain_listener_dial_seconds", "Time to build a connection for a listener's client, all handshakes.", connLabels("listener"), nil)
	d.latency["chain"] = prometheus.NewDesc("veilchain_chain_dial_seconds", "Time to build a connection through a chain, all handshakes.", connLabels("chain"), nil)
	d.latency["hop"] = prometheus.NewDesc("veilchain_hop_handshake_seconds", "Handshake time of the hop at a chain's position.", connLabels("hop"), nil)
	d.hopUp = prometheus.NewDesc("veilchain_hop_up", "1 when the hop's last handshake or health check worked, 0 when it failed (unknown: absent).",
		[]string{"chain", "position", "member"}, nil)
	d.hopLatency = prometheus.NewDesc("veilchain_hop_latency_seconds", "The hop's average handshake time.",
		[]string{"chain", "position", "member"}, nil)
	return d
}

func (d *descs) all() []*prometheus.Desc {
	out := []*prometheus.Desc{d.hopUp, d.hopLatency}
	for _, m := range []map[string]*prometheus.Desc{d.open, d.total, d.failed, d.bytes, d.latency} {
		for _, x := range m {
			out = append(out, x)
		}
	}
	return out
}

// Collector returns a prometheus.Collector reading r, to be registered on
// a prometheus.Registry of the caller's (never the global default one).
func (r *Registry) Collector() prometheus.Collector { return &collector{r: r, d: newDescs()} }

type collector struct {
	r *Registry
	d *descs
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.d.all() {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.r.Status()
	for _, l := range st.Listeners {
		c.totals(ch, "listener", l.Totals, l.Name)
	}
	for _, cs := range st.Chains {
		c.totals(ch, "chain", cs.Totals, cs.Name)
		for _, h := range cs.Hops {
			pos := strconv.Itoa(h.Position)
			c.totals(ch, "hop", h.Totals, cs.Name, pos)
			for i, m := range h.Members {
				member := strconv.Itoa(i + 1)
				if m.Health != "unknown" {
					up := 0.0
					if m.Health == "up" {
						up = 1
					}
					ch <- prometheus.MustNewConstMetric(c.d.hopUp, prometheus.GaugeValue, up, cs.Name, pos, member)
				}
				if m.LatencyMS > 0 {
					ch <- prometheus.MustNewConstMetric(c.d.hopLatency, prometheus.GaugeValue, m.LatencyMS/1000, cs.Name, pos, member)
				}
			}
		}
	}
}

func (c *collector) totals(ch chan<- prometheus.Metric, kind string, t Totals, labels ...string) {
	d := c.d
	ch <- prometheus.MustNewConstMetric(d.open[kind], prometheus.GaugeValue, float64(t.Open), labels...)
	ch <- prometheus.MustNewConstMetric(d.total[kind], prometheus.CounterValue, float64(t.Total), labels...)
	ch <- prometheus.MustNewConstMetric(d.failed[kind], prometheus.CounterValue, float64(t.Failed), labels...)
	ch <- prometheus.MustNewConstMetric(d.bytes[kind], prometheus.CounterValue, float64(t.BytesUp), append(labels, "up")...)
	ch <- prometheus.MustNewConstMetric(d.bytes[kind], prometheus.CounterValue, float64(t.BytesDown), append(labels, "down")...)
	if ld := d.latency[kind]; ld != nil {
		buckets := map[float64]uint64{}
		var cum uint64
		for i, b := range t.Latency.BoundsMS {
			cum += t.Latency.Counts[i]
			buckets[b/1000] = cum
		}
		ch <- prometheus.MustNewConstHistogram(ld, t.Latency.Count, t.Latency.SumMS/1000, buckets, labels...)
	}
}
