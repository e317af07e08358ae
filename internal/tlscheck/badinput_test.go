package tlscheck

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mtlsguard/mtlsguard/internal/doctable"
)

type badInput struct {
	yaml string
	args []string
}

// badInputs are the inputs of the rows of docs/reliability.md, "Bad input
// to tls-check": a file bad.yaml holding yaml (unless empty), and the
// arguments.
var badInputs = map[string]badInput{
	"malformed YAML":                                    {yaml: "apiVersion: v1\nkind: Namespace\nmetadata: {name: [\n"},
	"document that is not an object":                    {yaml: "- apiVersion: v1\n  kind: Namespace\n"},
	"object without kind":                               {yaml: "apiVersion: v1\nmetadata: {name: x}\n"},
	"unknown kind":                                      {yaml: "apiVersion: example.io/v1\nkind: Widget\nmetadata: {name: w, namespace: default}\n"},
	"unknown version of a known kind":                   {yaml: "apiVersion: networking.istio.io/v2\nkind: DestinationRule\nmetadata: {name: r, namespace: ns}\nspec: {host: h}\n"},
	"missing metadata.name":                             {yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: ns}\nspec: {ports: [{port: 80}]}\n"},
	"DestinationRule without host":                      {yaml: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: ns}\nspec: {trafficPolicy: {tls: {mode: DISABLE}}}\n"},
	"field of the wrong type":                           {yaml: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: ns}\nspec: {host: 7}\n"},
	"unknown TLS mode (newer Istio)":                    {yaml: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: ns}\nspec:\n  host: h\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 80}\n      tls: {mode: OPTIONAL_MUTUAL}\n"},
	"unknown mTLS mode (newer Istio)":                   {yaml: "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: ns}\nspec: {mtls: {mode: SUPER_STRICT}}\n"},
	"unknown TLS mode number":                           {yaml: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: ns}\nspec: {host: h, trafficPolicy: {tls: {mode: 9}}}\n"},
	"unknown port-level mTLS mode number":               {yaml: "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: ns}\nspec: {selector: {matchLabels: {app: a}}, portLevelMtls: {\"8080\": {mode: 7}}}\n"},
	"unknown field in an Istio spec":                    {yaml: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: ns}\nspec: {host: h, trafficPolicy: {tsl: {mode: DISABLE}}}\n"},
	"mesh ConfigMap with invalid YAML":                  {yaml: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: \"enableAutoMtls: [\"\n"},
	"mesh ConfigMap with a wrong type":                  {yaml: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: \"enableAutoMtls: maybe\"\n"},
	"unreadable file":                                   {args: []string{"-f", "missing.yaml"}},
	"unknown flag":                                      {args: []string{"--bogus"}},
	"invalid --output":                                  {args: []string{"-o", "yaml"}},
	"--per-view without -A":                             {args: []string{"--per-view"}},
	"--per-view with html":                              {args: []string{"-A", "--per-view", "-o", "html"}},
	"too many arguments":                                {args: []string{"a", "b", "c"}},
	"pod not found":                                     {args: []string{"nope.default"}},
	"client namespace without sidecars or ambient pods": {args: []string{"-n", "istio-system"}},
}

var exitCode = regexp.MustCompile(`^exit (\d)`)

// TestBadInputGetsTheDocumentedAnswer runs tls-check on every class of bad
// input docs/reliability.md lists and checks the exit code and the first
// line of stderr the document gives; the document and this test list the
// same cases.
func TestBadInputGetsTheDocumentedAnswer(t *testing.T) {
	examples, err := filepath.Abs(deepDive)
	if err != nil {
		t.Fatal(err)
	}
	doctable.RunCases(t, "../../docs/reliability.md", "### Bad input to tls-check", badInputs, func(t *testing.T, row doctable.Row, in badInput) {
		m := exitCode.FindStringSubmatch(row[2])
		if m == nil {
			t.Fatalf("answer %q does not start with exit N", row[2])
		}
		wantCode, _ := strconv.Atoi(m[1])
		wantStderr := row.Code(2)
		t.Chdir(t.TempDir())
		args := append([]string{"-f", examples}, in.args...)
		if in.yaml != "" {
			if err := os.WriteFile("bad.yaml", []byte(in.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			args = append(args, "-f", "bad.yaml")
		}
		code, out, errOut := run(t, "", args...)
		first, _, _ := strings.Cut(errOut, "\n")
		if code != wantCode || first != wantStderr {
			t.Errorf("exit %d, stderr %q; want exit %d, %q", code, errOut, wantCode, wantStderr)
		}
		if (code == ExitOK) != (out != "") {
			t.Errorf("exit %d with stdout %q: a table exactly when the exit code is 0", code, out)
		}
	})
}
