package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	mtlsscheme "github.com/mtlsguard/mtlsguard/internal/scheme"
	"github.com/mtlsguard/mtlsguard/internal/webhooktest"
	"github.com/mtlsguard/mtlsguard/webhook"
)

// scheme knows the core kinds and every served version of the Istio kinds.
var scheme = mtlsscheme.New()

// cluster is a client of the control plane that records the warnings of
// each request.
type cluster struct {
	client.Client
	warnings *recorder
}

type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) HandleWarningHeader(_ int, _ string, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, text)
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := rest.CopyConfig(cfg)
	rec := &recorder{}
	c.WarningHandler = rec
	cl, err := client.New(c, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{Client: cl, warnings: rec}
}

// do runs one request and returns its warnings and error.
func (c *cluster) do(f func(ctx context.Context) error) ([]string, error) {
	c.warnings.take()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := f(ctx)
	return c.warnings.take(), err
}

// mustCreate creates obj, which must be admitted without a warning, and
// deletes it when the test ends (cleanups run last in, first out, so
// objects go in the reverse order of creation).
func (c *cluster) mustCreate(t *testing.T, obj client.Object) {
	t.Helper()
	c.create(t, obj)
	c.deleteAtCleanup(t, obj)
}

// create creates obj, which must be admitted without a warning.
func (c *cluster) create(t *testing.T, obj client.Object) {
	t.Helper()
	if w, err := c.do(func(ctx context.Context) error { return c.Create(ctx, obj) }); err != nil || len(w) > 0 {
		t.Fatalf("create %s %s/%s: %v, warnings %q", kindOf(obj), obj.GetNamespace(), obj.GetName(), err, w)
	}
}

func (c *cluster) deleteAtCleanup(t *testing.T, obj client.Object) {
	t.Helper()
	t.Cleanup(func() {
		obj := obj.DeepCopyObject().(client.Object)
		_, err := c.do(func(ctx context.Context) error { return c.Delete(ctx, obj) })
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("cleanup: delete %s %s/%s: %v", kindOf(obj), obj.GetNamespace(), obj.GetName(), err)
		}
	})
}

// ensureNamespace creates a namespace, or sets labels on an existing one.
// envtest runs no namespace controller, so namespaces are never deleted;
// the labels are removed when the test ends.
func (c *cluster) ensureNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, ns); apierrors.IsNotFound(err) {
		ns.Name = name
		if err := c.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	c.label(t, name, values(labels))
	t.Cleanup(func() {
		off := map[string]*string{}
		for k := range labels {
			off[k] = nil
		}
		c.label(t, name, off)
	})
}

// label sets (value) or removes (nil) namespace labels.
func (c *cluster) label(t *testing.T, name string, labels map[string]*string) {
	t.Helper()
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Patch(context.Background(), ns, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatalf("label namespace %s: %v", name, err)
	}
}

func values(m map[string]string) map[string]*string {
	out := make(map[string]*string, len(m))
	for k, v := range m {
		out[k] = &v
	}
	return out
}

func kindOf(obj runtime.Object) string {
	gvks, _, err := scheme.ObjectKinds(obj)
	if err != nil || len(gvks) == 0 {
		return fmt.Sprintf("%T", obj)
	}
	return gvks[0].Kind
}

// loadYAML decodes the objects of a YAML file under the repository root.
func loadYAML(t *testing.T, path string) []client.Object {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := serializer.NewCodecFactory(scheme).UniversalDeserializer()
	var out []client.Object
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, obj.(client.Object))
	}
}

// running is a webhook served from a manager, as cmd/mtlsguard runs it.
type running struct {
	options webhook.Options
}

// startWebhook runs the webhook on the port the webhook configuration
// calls, with the options mutate sets, until the test ends; it returns once
// /readyz says every informer has synced.
func startWebhook(t *testing.T, mutate ...func(*webhook.Options)) *running {
	t.Helper()
	o := webhooktest.Options(t, env.WebhookInstallOptions)
	for _, m := range mutate {
		m(&o)
	}
	done := webhooktest.Start(t, cfg, o)
	start := time.Now()
	eventually(t, 60*time.Second, func() error {
		select {
		case err := <-done:
			t.Fatalf("manager stopped: %v", err)
		default:
		}
		return get("http://" + o.HealthProbeBindAddress + "/readyz")
	})
	t.Logf("webhook ready after %v", time.Since(start).Round(time.Millisecond))
	return &running{options: o}
}

// metrics returns the Prometheus exposition of the running webhook.
func (r *running) metrics(t *testing.T) string {
	t.Helper()
	return webhooktest.Metrics(t, r.options.MetricsBindAddress)
}

func get(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, body)
	}
	return nil
}

// eventually retries f until it succeeds or the timeout passes. The
// webhook's cache follows the API server with a delay: a test waits for it
// with a side-effect-free probe (usually a dry-run write) before asserting.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kubectl runs bin/kubectl as an admin of the control plane.
func kubectl(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	user, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := user.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	o, e, err := k.Run(args...)
	ob, _ := io.ReadAll(o)
	eb, _ := io.ReadAll(e)
	return string(ob), string(eb), err
}

func equal(a, b []string) bool { return slices.Equal(a, b) }

// auditEvent is the part of an audit.k8s.io/v1 Event the tests read.
type auditEvent struct {
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	ObjectRef  struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int32 `json:"code"`
	} `json:"responseStatus"`
	Annotations map[string]string `json:"annotations"`
}

// audited returns the annotations of the last audit event of a request
// (not a dry-run) with this verb, object and response code.
func audited(t *testing.T, verb, namespace, name string, code int32) map[string]string {
	t.Helper()
	var found map[string]string
	eventually(t, 10*time.Second, func() error {
		b, err := os.ReadFile(auditLog)
		if err != nil {
			return err
		}
		found = nil
		for _, line := range bytes.Split(b, []byte("\n")) {
			var e auditEvent
			if json.Unmarshal(line, &e) != nil {
				continue
			}
			if e.Verb == verb && e.ObjectRef.Namespace == namespace && e.ObjectRef.Name == name &&
				e.ResponseStatus.Code == code && !strings.Contains(e.RequestURI, "dryRun") {
				found = e.Annotations
			}
		}
		if found == nil {
			return fmt.Errorf("no audit event %s %s/%s %d in %s", verb, namespace, name, code, auditLog)
		}
		return nil
	})
	return found
}
