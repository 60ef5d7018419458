package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/veilchain/veilchain/chain"
)

// column is one way through to the destination: direct, the floor, a
// veilchain chain or a peer's. Every measure is taken for every column
// in the same run, one column after another.
type column struct {
	name       string
	d          chain.Dialer
	bulk, echo string // the destination's addresses as this column reaches them
	// pid is the process whose CPU time and RSS are read: the front end,
	// or the floor's first relay (0: none, direct).
	pid  int
	idle bool // RSS per idle relayed connection is measured for it
}

// cell is one measured value: set, failed (with a note below the
// table), or blank (not measured for that column).
type cell struct {
	v         float64
	set, fail bool
}

func val(v float64) cell { return cell{v: v, set: true} }

// table prints each measure as a row when it is measured, and keeps the
// rows for the ratio tables at the end.
type table struct {
	cols  []*column
	rows  []tableRow
	notes []string
}

type tableRow struct {
	name   string
	prec   int // decimals
	ratios bool
	cells  []cell
}

const nameWidth, cellWidth = 46, 10

func (t *table) cells() []cell { return make([]cell, len(t.cols)) }

// fail notes why column c failed what, and returns the failed cell.
func (t *table) fail(c *column, what string, err error) cell {
	t.note(c, what, err)
	return cell{fail: true}
}

// note keeps an error of column c's for the list under the tables.
func (t *table) note(c *column, what string, err error) {
	t.notes = append(t.notes, fmt.Sprintf("%s, %s: %v", c.name, what, err))
}

func (t *table) header() {
	fmt.Printf("%-*s", nameWidth, "measure")
	for _, c := range t.cols {
		fmt.Printf(" %*s", cellWidth, c.name)
	}
	fmt.Println()
}

// row prints a measure and keeps it; ratios says whether it appears in
// the ratio tables.
func (t *table) row(name string, prec int, ratios bool, cells []cell) {
	t.rows = append(t.rows, tableRow{name, prec, ratios, cells})
	fmt.Printf("%-*s", nameWidth, name)
	for _, c := range cells {
		fmt.Printf(" %*s", cellWidth, c.text(prec))
	}
	fmt.Println()
}

func (c cell) text(prec int) string {
	switch {
	case c.fail:
		return "failed"
	case !c.set:
		return ""
	}
	return strconv.FormatFloat(c.v, 'f', prec, 64)
}

// ratioTable prints every ratio row's cells divided by column base's, for
// the columns after it (direct, floor, veilchain, then the others: each
// is compared with those before it); rows where base has no value are
// left out.
func (t *table) ratioTable(title string, base int) {
	var cols []int
	for i := base + 1; i < len(t.cols); i++ {
		cols = append(cols, i)
	}
	if base < 0 || len(cols) == 0 {
		return
	}
	fmt.Printf("\n%-*s", nameWidth, title)
	for _, i := range cols {
		fmt.Printf(" %*s", cellWidth, t.cols[i].name)
	}
	fmt.Println()
	for _, r := range t.rows {
		b := r.cells[base]
		if !r.ratios || !b.set || b.v == 0 {
			continue
		}
		fmt.Printf("%-*s", nameWidth, r.name)
		for _, i := range cols {
			c, s := r.cells[i], ""
			switch {
			case c.fail:
				s = "failed"
			case c.set:
				s = fmt.Sprintf("%.2fx", c.v/b.v)
			}
			fmt.Printf(" %*s", cellWidth, s)
		}
		fmt.Println()
	}
}

// index is the column named name, or -1.
func (t *table) index(name string) int {
	for i, c := range t.cols {
		if c.name == name {
			return i
		}
	}
	return -1
}

// finish prints the ratio tables and the notes on failures and errors.
func (t *table) finish() {
	t.ratioTable("ratio to direct", t.index("direct"))
	t.ratioTable("ratio to the floor", t.index("floor"))
	t.ratioTable("ratio to veilchain", t.index("veilchain"))
	if len(t.notes) > 0 {
		fmt.Println("\nfailures and errors:")
		for _, n := range t.notes {
			fmt.Println("  " + strings.ReplaceAll(n, "\n", " "))
		}
	}
}
