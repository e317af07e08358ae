package benche2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// rootModule is the module whose binaries the harness drives.
const rootModule = "github.com/mtlsguard/mtlsguard"

// serviceCIDR holds a million ClusterIPs. envtest's default, a /24, holds
// about 250 Services; this is only an API server flag, nothing is routed.
const serviceCIDR = "10.96.0.0/12"

// auditPolicy logs Istio writes at the Metadata level: the audit event of a
// write carries the API server's failed-open annotation when the webhook did
// not answer in time, which is how a timeout is told from an admission.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  resources:
  - group: networking.istio.io
  - group: security.istio.io
  verbs: [create, update, patch, delete]
- level: None
`

// controlPlane is etcd and kube-apiserver from bin/, with the Istio CRDs.
type controlPlane struct {
	cfg        *rest.Config // cluster-admin
	kubeconfig string       // the same identity, for the processes
	auditLog   string
}

// startControlPlane starts etcd and kube-apiserver from bin with envtest,
// with a service range large enough for the biggest scale and an audit log,
// and installs the Istio CRDs of the istio.io/api version the product uses.
func startControlPlane(t *testing.T, root, bin, work string) *controlPlane {
	t.Helper()
	crds := filepath.Join(moduleDir(t, root, "istio.io/api"), "kubernetes", "customresourcedefinitions.gen.yaml")
	policyFile := filepath.Join(work, "audit-policy.yaml")
	if err := os.WriteFile(policyFile, []byte(auditPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cp := &controlPlane{auditLog: filepath.Join(work, "audit.log"), kubeconfig: filepath.Join(work, "admin.kubeconfig")}

	env := &envtest.Environment{
		BinaryAssetsDirectory: bin,
		CRDInstallOptions:     envtest.CRDInstallOptions{Paths: []string{crds}, ErrorIfPathMissing: true},
	}
	env.ControlPlane.GetAPIServer().Configure().
		Set("service-cluster-ip-range", serviceCIDR).
		Set("audit-policy-file", policyFile).
		Set("audit-log-path", cp.auditLog)
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting etcd and kube-apiserver from %s: %v", bin, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	cp.cfg = cfg

	admin, err := env.AddUser(envtest.User{Name: "bench-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp.kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return cp
}

// fastConfig is cfg with client-side throttling out of the way: the harness
// loads tens of thousands of objects, and client-go's default of 5 requests
// per second would take hours.
func fastConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = 5000, 10000
	c.WarningHandler = rest.NoWarnings{} // warnings are recorded per request, see recorder
	return c
}

// repoRoot is the root module's directory, two levels up.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.Contains(gomod, []byte("module "+rootModule+"\n")) {
		t.Fatalf("%s is not the %s module (%v)", root, rootModule, err)
	}
	return root
}

// moduleDir is where the module cache holds module mod, at the version the
// module in dir requires (downloading it through the module proxy if needed).
func moduleDir(t *testing.T, dir, mod string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", mod)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			err = fmt.Errorf("%w: %s", err, exit.Stderr)
		}
		t.Fatalf("go mod download %s in %s: %v", mod, dir, err)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go mod download %s in %s: no directory (%v %s)", mod, dir, err, m.Error)
	}
	return m.Dir
}
