package statuspage

import (
	"fmt"
	"strings"
	"time"

	"github.com/veilchain/veilchain/internal/stats"
)

// The graph's drawing area, in SVG user units.
const graphW, graphH = 600, 100

// graph is the throughput graph as the page draws it: two polylines'
// points (bytes per second down and up, one point per sample, the
// newest at the right edge, a slot per sample the ring can hold) and
// its labels.
type graph struct {
	Down, Up       string // "x,y x,y …"
	Span           string // how far back the graph reaches when full
	Peak           string // the top of the scale, per second
	NowDown, NowUp string // the newest sample, per second
}

func drawGraph(samples []stats.Sample, slots int, step time.Duration) graph {
	g := graph{Span: (time.Duration(slots) * step).String()}
	if slots < 2 || len(samples) == 0 {
		return g
	}
	perSecond := func(n int64) float64 { return float64(n) / step.Seconds() }
	var peak int64 = 1
	for _, s := range samples {
		peak = max(peak, s.Up, s.Down)
	}
	var down, up strings.Builder
	for i, s := range samples {
		x := float64(slots-len(samples)+i) * graphW / float64(slots-1)
		for _, p := range []struct {
			b *strings.Builder
			v int64
		}{{&down, s.Down}, {&up, s.Up}} {
			if i > 0 {
				p.b.WriteByte(' ')
			}
			fmt.Fprintf(p.b, "%s,%s", num(x), num(graphH-float64(p.v)*graphH/float64(peak)))
		}
	}
	last := samples[len(samples)-1]
	g.Down, g.Up = down.String(), up.String()
	g.Peak = stats.Bytes(int64(perSecond(peak))) + "/s"
	g.NowDown, g.NowUp = stats.Bytes(int64(perSecond(last.Down)))+"/s", stats.Bytes(int64(perSecond(last.Up)))+"/s"
	return g
}

// num writes v with at most one decimal, and none when it is whole.
func num(v float64) string {
	s := fmt.Sprintf("%.1f", v)
	return strings.TrimSuffix(s, ".0")
}
