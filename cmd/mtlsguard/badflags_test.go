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
	doctable.RunCases(t, "../../docs/reliability.md", "### Bad flags to mtlsguard", badFlags, func(t *testing.T, row doctable.Row, args []string) {
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
