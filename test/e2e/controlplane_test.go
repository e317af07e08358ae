package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// rootModule is the module whose binaries this test drives as processes. The
// e2e module never imports it: cert-manager pins other k8s.io versions.
const rootModule = "github.com/mtlsguard/mtlsguard"

// cluster is the local control plane every step of the test shares.
type cluster struct {
	root       string // repository root
	bin        string // kube-apiserver, etcd, kubectl, mtlsguard
	logs       string // process logs, kept when the test fails
	cfg        *rest.Config
	client     kubernetes.Interface
	kubeconfig string // cluster-admin kubeconfig for kubectl and cert-manager
}

// startCluster starts etcd and kube-apiserver from bin/ with envtest and
// installs the Istio and cert-manager CRDs. A missing binary fails the test:
// nothing here is optional.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{root: repoRoot(t)}
	c.bin = os.Getenv("KUBEBUILDER_ASSETS")
	if c.bin == "" {
		c.bin = filepath.Join(c.root, "bin")
	}
	for name, how := range map[string]string{
		"etcd":           "make bin",
		"kube-apiserver": "make bin",
		"kubectl":        "make bin",
		"mtlsguard":      "make build",
	} {
		if _, err := os.Stat(filepath.Join(c.bin, name)); err != nil {
			t.Fatalf("%s is missing from %s: run `%s` first (%v)", name, c.bin, how, err)
		}
	}

	c.logs = logDir(t)
	// cert-manager and controller-runtime log through klog: into a file, so a
	// failing test shows our own messages rather than thousands of lines.
	klogFile, err := os.Create(filepath.Join(c.logs, "cert-manager.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { klogFile.Close() })
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	for name, value := range map[string]string{"logtostderr": "false", "stderrthreshold": "FATAL"} {
		if err := klogFlags.Set(name, value); err != nil {
			t.Fatal(err)
		}
	}
	klog.SetOutput(klogFile)
	ctrl.SetLogger(klog.NewKlogr())

	istioCRDs := filepath.Join(moduleDir(t, c.root, "istio.io/api"), "kubernetes", "customresourcedefinitions.gen.yaml")
	certManagerCRDs := filepath.Join(moduleDir(t, ".", "github.com/cert-manager/cert-manager"), "deploy", "crds")

	env := &envtest.Environment{
		// A loaded CI machine can take well over envtest\'s 20 s default
		// to start kube-apiserver.
		ControlPlaneStartTimeout: 3 * time.Minute,
		BinaryAssetsDirectory:    c.bin,
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths:              []string{istioCRDs, certManagerCRDs},
			ErrorIfPathMissing: true,
		},
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting etcd and kube-apiserver from %s: %v", c.bin, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	c.cfg = cfg
	c.client = kubernetes.NewForConfigOrDie(cfg)

	admin, err := env.AddUser(envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	c.kubeconfig = filepath.Join(t.TempDir(), "admin.kubeconfig")
	if err := os.WriteFile(c.kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// impersonatingKubeconfig writes a copy of the admin kubeconfig that acts as
// the given ServiceAccount, so a process using it gets exactly that
// ServiceAccount's RBAC.
func (c *cluster) impersonatingKubeconfig(t *testing.T, namespace, serviceAccount string) string {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range kc.AuthInfos {
		auth.Impersonate = "system:serviceaccount:" + namespace + ":" + serviceAccount
	}
	path := filepath.Join(t.TempDir(), serviceAccount+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// result is what one kubectl run left behind.
type result struct {
	cmd            string
	stdout, stderr string
	code           int
}

// kubectl runs bin/kubectl as cluster-admin and logs the command and its
// output the way a terminal would show them.
func (c *cluster) kubectl(t *testing.T, args ...string) result {
	t.Helper()
	r := c.runKubectl(t, args...)
	t.Logf("$ %s\n%s%s(exit %d)", r.cmd, r.stdout, r.stderr, r.code)
	return r
}

// kustomize is `kubectl kustomize dir`, not logged.
func (c *cluster) kustomize(t *testing.T, dir string) string {
	t.Helper()
	r := c.runKubectl(t, "kustomize", dir)
	if r.code != 0 {
		t.Fatalf("%s: exit %d\n%s", r.cmd, r.code, r.stderr)
	}
	return r.stdout
}

func (c *cluster) runKubectl(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(c.bin, "kubectl"), append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Dir = c.root
	return runCommand(t, cmd, "kubectl "+strings.Join(args, " "))
}

// runCommand runs cmd and returns its output and exit code; only a command
// that cannot run at all fails the test.
func runCommand(t *testing.T, cmd *exec.Cmd, display string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{cmd: display, stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", r.cmd, err)
	}
	return r
}

// mustKubectl is kubectl that fails the test unless kubectl exits 0.
func (c *cluster) mustKubectl(t *testing.T, args ...string) result {
	t.Helper()
	r := c.kubectl(t, args...)
	if r.code != 0 {
		t.Fatalf("%s: exit %d, want 0\n%s", r.cmd, r.code, r.stderr)
	}
	return r
}

// repoRoot is the root module's directory, two levels up from test/e2e.
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
// module in dir requires (downloading it if needed).
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

// logDir holds the logs of the processes the test starts. It is removed when
// the test passes and kept (and named) when it fails.
func logDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mtlsguard-e2e-logs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// freePort asks the kernel for a free local TCP port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tail is the end of a log file, for failure messages.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
