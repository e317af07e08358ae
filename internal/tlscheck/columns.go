package tlscheck

import (
	"bufio"
	"unicode/utf8"
)

// columns prints aligned text rows as the old command's tabwriter did
// (padding 5, the last column unpadded), but one row at a time: the widths
// are measured in a first pass over the rows' cells, so the rows themselves
// never wait in a buffer. tabwriter holds every line until Flush.
type columns struct {
	widths []int // of every column but the last
}

const columnPadding = 5

func newColumns(header []string) *columns {
	c := &columns{widths: make([]int, len(header)-1)}
	c.fit(header)
	return c
}

// fit widens the columns to hold cells.
func (c *columns) fit(cells []string) {
	for i := range c.widths {
		c.widths[i] = max(c.widths[i], utf8.RuneCountInString(cells[i]))
	}
}

// fitColumn widens column i to hold cell.
func (c *columns) fitColumn(i int, cell string) {
	c.widths[i] = max(c.widths[i], utf8.RuneCountInString(cell))
}

// write prints one row.
func (c *columns) write(w *bufio.Writer, cells ...string) error {
	for i, cell := range cells {
		w.WriteString(cell)
		if i < len(c.widths) && i < len(cells)-1 {
			pad(w, c.widths[i]+columnPadding-utf8.RuneCountInString(cell))
		}
	}
	return w.WriteByte('\n')
}

const spaces = "                                                                "

func pad(w *bufio.Writer, n int) {
	for n > 0 {
		k := min(n, len(spaces))
		w.WriteString(spaces[:k])
		n -= k
	}
}
