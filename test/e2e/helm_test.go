package e2e

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// chartDir is the Helm chart, relative to the repository root.
const chartDir = "charts/mtlsguard"

// helmTool runs bin/helm from the repository root, with its configuration,
// cache and data in a temporary directory so that no run depends on (or
// changes) the user's Helm setup.
type helmTool struct {
	root, bin string
	env       []string
}

// newHelm finds bin/helm (and bin/kubectl, which the chart tests compare
// against); a missing binary fails the test.
func newHelm(t *testing.T) *helmTool {
	t.Helper()
	h := &helmTool{root: repoRoot(t)}
	h.bin = os.Getenv("KUBEBUILDER_ASSETS")
	if h.bin == "" {
		h.bin = filepath.Join(h.root, "bin")
	}
	for _, name := range []string{"helm", "kubectl"} {
		if _, err := os.Stat(filepath.Join(h.bin, name)); err != nil {
			t.Fatalf("%s is missing from %s: run `make bin` first (%v)", name, h.bin, err)
		}
	}
	home := t.TempDir()
	h.env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	return h
}

// run runs helm with args and returns what it printed and its exit code.
func (h *helmTool) run(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(h.bin, "helm"), args...)
	cmd.Dir = h.root
	cmd.Env = h.env
	return runCommand(t, cmd, "helm "+strings.Join(args, " "))
}

// mustRun is run that fails the test unless helm exits 0.
func (h *helmTool) mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := h.run(t, args...)
	if r.code != 0 {
		t.Fatalf("%s: exit %d, want 0\n%s%s", r.cmd, r.code, r.stdout, r.stderr)
	}
	return r
}

// template renders the chart as release "mtlsguard" in namespace (the names
// manifests/ uses, unless the args say otherwise) and decodes the objects.
func (h *helmTool) template(t *testing.T, args ...string) objects {
	t.Helper()
	r := h.mustRun(t, append([]string{"template", "mtlsguard", chartDir, "--namespace", namespace}, args...)...)
	return decodeObjects(t, r.cmd, r.stdout)
}

// kustomize renders a kustomization directory with bin/kubectl.
func (h *helmTool) kustomize(t *testing.T, dir string) objects {
	t.Helper()
	cmd := exec.Command(filepath.Join(h.bin, "kubectl"), "kustomize", dir)
	cmd.Dir = h.root
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			err = errors.Join(err, errors.New(string(exit.Stderr)))
		}
		t.Fatalf("kubectl kustomize %s: %v", dir, err)
	}
	return decodeObjects(t, "kubectl kustomize "+dir, string(out))
}

// objects are rendered Kubernetes objects.
type objects []*unstructured.Unstructured

// decodeObjects decodes a stream of YAML documents, skipping empty ones.
func decodeObjects(t *testing.T, what, stream string) objects {
	t.Helper()
	var out objects
	d := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	for {
		var u unstructured.Unstructured
		if err := d.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("%s: decoding its output: %v", what, err)
		}
		if len(u.Object) > 0 {
			out = append(out, &u)
		}
	}
}

// key names an object by kind, namespace and name.
func key(u *unstructured.Unstructured) string {
	return u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
}

// find returns the object of kind with name (in any namespace), failing the
// test if there is not exactly one.
func (o objects) find(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, u := range o {
		if u.GetKind() == kind && u.GetName() == name {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s %s, found %d among:\n%s", kind, name, len(found), strings.Join(o.keys(), "\n"))
	}
	return found[0]
}

// kinds counts the objects of each kind.
func (o objects) kinds() map[string]int {
	n := map[string]int{}
	for _, u := range o {
		n[u.GetKind()]++
	}
	return n
}

func (o objects) keys() []string {
	k := make([]string, len(o))
	for i, u := range o {
		k[i] = key(u)
	}
	return k
}

// typed converts a rendered object into its Go type (appsv1.Deployment, ...).
func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s: %v", key(u), err)
	}
	return out
}
