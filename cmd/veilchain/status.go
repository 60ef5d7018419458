package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/veilchain/veilchain/internal/control"
	"github.com/veilchain/veilchain/internal/stats"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show what a running `veilchain run` is doing: its chains, their hops' health, live connections",
		Description: "Reads the run's control socket (only its user can). The live connections' destinations are shown\n" +
			"here and on the local status page only; they never appear in metrics or info-level logs.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the state as JSON (the control endpoint's /v1/status)"},
			&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "refresh every second, in place, until Ctrl-C"},
			&cli.StringFlag{Name: "control", Usage: "the control socket `PATH` of the run to ask", DefaultText: controlPathText()},
		},
		Action: func(c *cli.Context) error {
			path, err := runControlPath(c)
			if err != nil {
				return err
			}
			show := func() error {
				ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
				defer cancel()
				var st stats.Status
				if err := control.Call(ctx, path, "GET", "/v1/status", &st); err != nil {
					return fmt.Errorf("no veilchain is running here (nothing answers on %s); start one with `veilchain run`: %w", path, err)
				}
				if c.Bool("json") {
					enc := json.NewEncoder(c.App.Writer)
					enc.SetIndent("", "  ")
					return enc.Encode(&st)
				}
				writeStatus(c.App.Writer, &st, time.Now())
				return nil
			}
			if !c.Bool("watch") {
				return show()
			}
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				fmt.Fprint(c.App.Writer, "\x1b[H\x1b[2J") // home, clear: redraw in place
				if err := show(); err != nil {
					fmt.Fprintln(c.App.Writer, err)
				}
				select {
				case <-c.Context.Done():
					return nil
				case <-tick.C:
				}
			}
		},
	}
}

// writeStatus prints st for people: each chain as a hop diagram with
// health and latency, then the listeners, then the live connections.
func writeStatus(w io.Writer, st *stats.Status, now time.Time) {
	up := ""
	if !st.Since.IsZero() {
		up = ", up " + now.Sub(st.Since).Round(time.Second).String()
	}
	fmt.Fprintf(w, "veilchain (pid %d%s)\n\n", st.PID, up)
	for _, ch := range st.Chains {
		mode := ch.Mode
		if ch.Direct {
			mode = "DIRECT: no proxy"
		}
		fmt.Fprintf(w, "chain %s (%s): %s\n", ch.Name, mode, totalsText(ch.Totals))
		if len(ch.Hops) > 0 {
			fmt.Fprintf(w, "  you -> %s -> destination\n", hopDiagram(ch.Hops))
		}
		if ch.Prebuild > 0 {
			fmt.Fprintf(w, "  circuits built ahead: %d of %d ready\n", ch.Prebuilt, ch.Prebuild)
		}
		if ch.LastError != "" {
			fmt.Fprintf(w, "  last error (%s ago): %s\n", now.Sub(ch.ErrorAt).Round(time.Second), ch.LastError)
		}
		if e := ch.Exit; e != nil {
			addr := e.Addr
			if addr == "" {
				addr = "unknown"
			}
			fmt.Fprintf(w, "  exit address: %s (asked %s ago)", addr, now.Sub(e.At).Round(time.Second))
			if e.Error != "" {
				fmt.Fprintf(w, "; the last ask failed: %s", e.Error)
			}
			fmt.Fprintln(w)
		}
	}
	if len(st.Listeners) > 0 {
		fmt.Fprintln(w)
		for _, l := range st.Listeners {
			fmt.Fprintf(w, "listener %s: %s\n", l.Name, totalsText(l.Totals))
		}
	}
	fmt.Fprintln(w)
	if len(st.Connections) == 0 {
		fmt.Fprintln(w, "no live connections")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLISTENER\tUSER\tCHAIN\tHOPS\tDESTINATION\tUP\tDOWN\tAGE")
	for _, c := range st.Connections {
		user := c.User
		if user == "" {
			user = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Listener, user, c.Chain,
			strings.Join(c.Hops, " -> "), c.Dest, stats.Bytes(c.BytesUp), stats.Bytes(c.BytesDown),
			(time.Duration(c.AgeS) * time.Second).String())
	}
	tw.Flush()
}

// hopDiagram is "a (up, 3.1 ms) -> {b (up) | c (down)} -> exit d (...)".
func hopDiagram(hops []stats.HopStatus) string {
	var parts []string
	for i, h := range hops {
		var ms []string
		for _, m := range h.Members {
			s := m.Addr + " (" + m.Health
			if m.LatencyMS > 0 {
				s += fmt.Sprintf(", %.1f ms", m.LatencyMS)
			}
			ms = append(ms, s+")")
		}
		p := strings.Join(ms, " | ")
		if len(ms) > 1 {
			p = "{" + p + "}"
		}
		if i == len(hops)-1 {
			p = "exit " + p
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " -> ")
}

func totalsText(t stats.Totals) string {
	return fmt.Sprintf("%d open, %d in all, %d failed, %s up, %s down", t.Open, t.Total, t.Failed,
		stats.Bytes(t.BytesUp), stats.Bytes(t.BytesDown))
}
