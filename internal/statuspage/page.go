package statuspage

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/veilchain/veilchain/internal/stats"
)

// page is rendered on the server: no script, a meta refresh every 2 s,
// the chains as boxes and arrows coloured by health, the live
// connections as a table. Its one style sheet carries the response's
// nonce; nothing is fetched from anywhere.
var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"bytes": stats.Bytes,
	"ms":    func(v float64) string { return fmt.Sprintf("%.1f ms", v) },
	"age":   func(s float64) string { return (time.Duration(s) * time.Second).String() },
	"join":  strings.Join,
	"last":  func(i, n int) bool { return i == n-1 },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="2">
<meta name="referrer" content="no-referrer">
<title>veilchain status</title>
<style nonce="{{.Nonce}}">
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.2em 0 .4em}
.meta{color:#666}
.chain{display:flex;align-items:center;flex-wrap:wrap;gap:.3em;margin:.4em 0 .2em}
.box{border:2px solid #999;border-radius:6px;padding:.3em .6em;background:#fff;min-width:8em}
.box small{display:block;color:#555}
.pool{display:flex;flex-direction:column;gap:.2em}
.up{border-color:#2a8a3a;background:#e9f7ec}.down{border-color:#c0392b;background:#fbeaea}.unknown{border-color:#999;background:#f1f1f1}
.end{border-style:dashed;min-width:0}
.arrow{font-size:1.4em;color:#555}
.err{color:#c0392b}
table{border-collapse:collapse;margin-top:.3em}th,td{text-align:left;padding:.2em .7em;border-bottom:1px solid #ddd}
td.n{text-align:right}
svg.graph{background:#fff;border:1px solid #ccc}
svg.graph polyline{fill:none;stroke-width:1.5}
polyline.gdown{stroke:#2a6fd6}polyline.gup{stroke:#d68a2a}
.kdown{color:#2a6fd6}.kup{color:#d68a2a}
</style></head><body>
<h1>veilchain</h1>
<div class="meta">pid {{.S.PID}}{{if .Up}}, up {{.Up}}{{end}} &middot; refreshes every 2 s</div>
{{range .S.Chains}}
<h2>chain {{.Name}} {{if .Direct}}(DIRECT: no proxy){{else}}({{.Mode}}){{end}}</h2>
<div class="chain" id="chain-{{.Name}}">
<div class="box end">you</div>{{$n := len .Hops}}
{{range $i, $h := .Hops}}<span class="arrow">&rarr;</span>
<div class="pool">{{range .Members}}<div class="box {{.Health}}" title="{{.Health}}">{{if last $i $n}}exit {{else}}hop {{$h.Position}} {{end}}<b>{{.Addr}}</b><small>{{.Health}}{{if .LatencyMS}}, {{ms .LatencyMS}}{{end}}</small></div>{{end}}</div>
{{end}}<span class="arrow">&rarr;</span><div class="box end">destination</div>
</div>
<div class="meta">{{.Open}} open, {{.Total}} in all, {{.Failed}} failed, {{bytes .BytesUp}} up, {{bytes .BytesDown}} down</div>
{{if .LastError}}<div class="err">last error: {{.LastError}}</div>{{end}}
{{if not .Direct}}<div class="meta exit">exit address: {{with .Exit}}{{if .Addr}}<b>{{.Addr}}</b>{{else}}unknown{{end}}{{if .Error}} <span class="err">(last ask failed: {{.Error}})</span>{{end}}{{else}}unknown{{if not $.Asking}} (set status_echo_url to ask an echo service through the chain){{end}}{{end}}</div>{{end}}
{{end}}
<h2>throughput, last {{.G.Span}}</h2>
<svg class="graph" id="throughput" viewBox="0 0 600 100" width="600" height="100" preserveAspectRatio="none" role="img" aria-label="bytes per second, down and up"><polyline class="gdown" points="{{.G.Down}}"/><polyline class="gup" points="{{.G.Up}}"/></svg>
<div class="meta">{{if .G.Peak}}<span class="kdown">down {{.G.NowDown}}</span>, <span class="kup">up {{.G.NowUp}}</span> now; top of the scale {{.G.Peak}}{{else}}collecting…{{end}}</div>
<h2>live connections</h2>
{{if .S.Connections}}<table id="connections">
<tr><th>listener</th><th>user</th><th>chain</th><th>hops</th><th>destination</th><th>up</th><th>down</th><th>age</th></tr>
{{range .S.Connections}}<tr><td>{{.Listener}}</td><td>{{.User}}</td><td>{{.Chain}}</td><td>{{join .Hops " → "}}</td><td>{{.Dest}}</td><td class="n">{{bytes .BytesUp}}</td><td class="n">{{bytes .BytesDown}}</td><td class="n">{{age .AgeS}}</td></tr>
{{end}}</table>{{else}}<p>none</p>{{end}}
<h2>listeners</h2>
<table><tr><th>listener</th><th>open</th><th>in all</th><th>failed</th><th>up</th><th>down</th><th>last error</th></tr>
{{range .S.Listeners}}<tr><td>{{.Name}}</td><td class="n">{{.Open}}</td><td class="n">{{.Total}}</td><td class="n">{{.Failed}}</td><td class="n">{{bytes .BytesUp}}</td><td class="n">{{bytes .BytesDown}}</td><td>{{.LastError}}</td></tr>
{{end}}</table>
</body></html>
`))

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	st := s.Stats.Status()
	st.PID = s.PID
	var nonce [16]byte
	rand.Read(nonce[:])
	data := struct {
		S      *stats.Status
		G      graph
		Asking bool
		Up     string
		Nonce  string
	}{S: st, Nonce: base64.RawURLEncoding.EncodeToString(nonce[:])} // URL-safe: nothing html/template escapes
	data.Asking = s.ExitEcho != nil
	data.G = drawGraph(s.Throughput.Samples(), s.Throughput.Slots(), s.Throughput.Interval())
	if !st.Since.IsZero() {
		data.Up = time.Since(st.Since).Round(time.Second).String()
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+data.Nonce+"'; img-src data:; "+
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	w.Write(buf.Bytes())
}
