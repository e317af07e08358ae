package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunFlags(t *testing.T) {
	scenarios := map[string]struct {
		args []string
		code int
		want string
	}{
		"help":             {args: []string{"--help"}, code: 0, want: "--default-mode enforce|audit"},
		"bad mode":         {args: []string{"--default-mode=off"}, code: 2, want: `mtlsguard: invalid argument "off" for "--default-mode" flag: must be enforce or audit`},
		"bad unsynced":     {args: []string{"--unsynced=later"}, code: 2, want: `for "--unsynced" flag: must be allow or deny`},
		"help timeout":     {args: []string{"--help"}, code: 0, want: "answered by --on-timeout (keep below the webhook's timeoutSeconds) (default 2s)"},
		"help on-timeout":  {args: []string{"--help"}, code: 0, want: "--on-timeout allow|deny"},
		"zero timeout":     {args: []string{"--decision-timeout=0"}, code: 2, want: `mtlsguard: invalid argument "0" for "--decision-timeout" flag: must be above zero`},
		"bad on-timeout":   {args: []string{"--on-timeout=wait"}, code: 2, want: `for "--on-timeout" flag: must be allow or deny`},
		"unknown flag":     {args: []string{"--enforce"}, code: 2, want: "mtlsguard: unknown flag: --enforce"},
		"bad port":         {args: []string{"--webhook-port=65536"}, code: 2, want: "mtlsguard: webhook port 65536: must be between 1 and 65535"},
		"arguments":        {args: []string{"serve"}, code: 2, want: `mtlsguard: unexpected arguments ["serve"]`},
		"kubeconfig":       {args: []string{"--kubeconfig=/nonexistent/kubeconfig"}, code: 1, want: "mtlsguard: "},
		"zap flags parsed": {args: []string{"--zap-log-level=debug", "--kubeconfig=/nonexistent/kubeconfig"}, code: 1, want: "mtlsguard: "},
	}
	for name, s := range scenarios {
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(s.args, &stderr); code != s.code || !strings.Contains(stderr.String(), s.want) {
				t.Errorf("run(%q) = %d, stderr:\n%s\nwant %d and %q", s.args, code, stderr.String(), s.code, s.want)
			}
		})
	}
}
