// Package doctable reads the tables of docs/reliability.md, so that a
// package's bad-input test can check that it has a case for every row the
// document promises, and that the answer it gets is the one documented.
package doctable

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
)

// Row is one row of a table: its cells, trimmed.
type Row []string

// Case is the first cell without its backquotes: the test case's name.
func (r Row) Case() string { return strings.Trim(r[0], "`") }

// Code returns the text between the first and the last backquote of cell
// i: the exact answer a row documents.
func (r Row) Code(i int) string {
	c := r[i]
	first, last := strings.Index(c, "`"), strings.LastIndex(c, "`")
	if first < 0 || last <= first {
		return ""
	}
	return c[first+1 : last]
}

// Read returns the rows (without the header) of the first table after the
// line heading in the Markdown file path.
func Read(path, heading string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	found, inTable := false, false
	var rows []Row
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case !found:
			found = line == heading
		case strings.HasPrefix(line, "|"):
			inTable = true
			cells := strings.Split(strings.Trim(line, "|"), "|")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			if strings.HasPrefix(cells[0], "---") || strings.HasPrefix(cells[0], ":--") {
				rows = rows[:0] // the header is above the separator
				continue
			}
			rows = append(rows, cells)
		case inTable:
			return rows, sc.Err()
		}
	}
	if !found {
		return nil, fmt.Errorf("%s: no line %q", path, heading)
	}
	return rows, sc.Err()
}

// RunCases runs check as a subtest for every row of the table under
// heading in the document at path, with the test case of the same name,
// and fails for a row without a case and for a case without a row: the
// document and the test must promise the same answers.
func RunCases[C any](t *testing.T, path, heading string, cases map[string]C, check func(t *testing.T, row Row, c C)) {
	t.Helper()
	rows, err := Read(path, heading)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s has no rows under %q", path, heading)
	}
	documented := map[string]bool{}
	for _, row := range rows {
		name := row.Case()
		documented[name] = true
		c, ok := cases[name]
		if !ok {
			t.Errorf("row %q has no case in this test", name)
			continue
		}
		t.Run(name, func(t *testing.T) { check(t, row, c) })
	}
	for name := range cases {
		if !documented[name] {
			t.Errorf("case %q is not documented in %s", name, path)
		}
	}
}
