package tlscheck

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mtlsguard/mtlsguard/internal/load"
)

// TestLiveCluster reads the Deep-Dive objects back from a real API server.
func TestLiveCluster(t *testing.T) {
	assets, err := filepath.Abs("../../bin")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			t.Fatalf("%s missing in %s: run `make bin` to build the API server binaries", b, assets)
		}
	}
	apiDir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api").Output()
	if err != nil {
		t.Fatalf("find the istio.io/api module: %v", err)
	}
	env := &envtest.Environment{
		// A loaded CI machine can take well over envtest\'s 20 s default
		// to start kube-apiserver.
		ControlPlaneStartTimeout: 3 * time.Minute,
		BinaryAssetsDirectory:    assets,
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths: []string{filepath.Join(strings.TrimSpace(string(apiDir)), "kubernetes", "customresourcedefinitions.gen.yaml")},
		},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })

	res, err := load.Paths([]string{deepDive, deepDive + "/bad-rule"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: load.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Namespaces first, as kubectl would need them.
	slices.SortStableFunc(res.Objects, func(a, b runtime.Object) int {
		_, an := a.(*corev1.Namespace)
		_, bn := b.(*corev1.Namespace)
		switch {
		case an && !bn:
			return -1
		case bn && !an:
			return 1
		}
		return 0
	})
	for _, obj := range res.Objects {
		o := obj.(client.Object)
		if ns, ok := obj.(*corev1.Namespace); ok && ns.Name == "default" {
			if err := c.Update(ctx, withVersion(ctx, t, c, o)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", obj, o.GetName(), err)
		}
	}

	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "tls-check", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kubeconfig, raw, 0o600); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := run(t, "", "--kubeconfig", kubeconfig, "--exit-code", "sleep-7f9c-x2z.default", "httpbin.default.svc.cluster.local")
	if code != ExitConflict || out != conflictTable {
		t.Errorf("exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", code, out, conflictTable, errOut)
	}
	code, _, errOut = run(t, "", "--kubeconfig", filepath.Join(t.TempDir(), "none"))
	if code != ExitError || !strings.Contains(errOut, "load kubeconfig") {
		t.Errorf("missing kubeconfig: exit %d, stderr %q", code, errOut)
	}
}

func withVersion(ctx context.Context, t *testing.T, c client.Client, o client.Object) client.Object {
	t.Helper()
	cur := o.DeepCopyObject().(client.Object)
	if err := c.Get(ctx, client.ObjectKeyFromObject(o), cur); err != nil {
		t.Fatal(err)
	}
	o.SetResourceVersion(cur.GetResourceVersion())
	return o
}
