package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mtlsguard/mtlsguard/internal/doctable"
)

// badFlags are the arguments of the rows of docs/reliability.md, "Bad flags
// to mtlsguard".
var badFlags = map[string][]string{
	"unknown flag":                    {"--enforce"},
	"invalid --default-mode":          {"--default-mode=off"},
	"invalid --unsynced":              {"--unsynced=later"},
	"invalid --on-timeout":            {"--on-timeout=wait"},
	"zero --decision-timeout":         {"--decision-timeout=0"},
	"negative --decision-timeout":     {"--decision-timeout=-1s"},
	"--decision-timeout without unit": {"--decision-timeout=2"},
	"--webhook-port out of range":     {"--webhook-port=65536"},
	"--webhook-port not a number":     {"--webhook-port=https"},
	"--auto-mtls not a boolean":       {"--auto-mtls=maybe"},
	"invalid --report-api":            {"--report-api=slack"},
	"positional arguments":            {"serve"},
}

var exitCode = regexp.MustCompile(`^exit (\d)`)

// TestBadFlagsGetTheDocumentedAnswer runs mtlsguard with every class of bad
// flag docs/reliability.md lists and checks the exit code and the first
// line of stderr the document gives: it stops before it reads a kubeconfig
// or starts anything.
func TestBadFlagsGetTheDocumentedAnswer(t *testing.T) {
	rows, err := doctable.Read("../../docs/reliability.md", "### Bad flags to mtlsguard")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatal("no rows")
	}
	documented := map[string]bool{}
	for _, row := range rows {
		name := row.Case()
		documented[name] = true
		args, ok := badFlags[name]
		if !ok {
			t.Errorf("row %q has no case in this test", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			m := exitCode.FindStringSubmatch(row[2])
			if m == nil {
				t.Fatalf("answer %q does not start with exit N", row[2])
			}
			want, _ := strconv.Atoi(m[1])
			var stderr bytes.Buffer
			code := run(args, &stderr)
			first, _, _ := strings.Cut(stderr.String(), "\n")
			if code != want || first != row.Code(2) {
				t.Errorf("exit %d, stderr %q; want exit %d, %q", code, stderr.String(), want, row.Code(2))
			}
		})
	}
	for name := range badFlags {
		if !documented[name] {
			t.Errorf("case %q is not documented in docs/reliability.md", name)
		}
	}
}
