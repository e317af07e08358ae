package webhook

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1beta1 "istio.io/client-go/pkg/apis/networking/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mtlsguard/mtlsguard/audit"
	"github.com/mtlsguard/mtlsguard/policy"
)

// decideBadRule returns the number of new conflicts bad-rule creates.
func decideBadRule(t *testing.T, s *Store) int {
	t.Helper()
	v, err := s.decide(context.Background(), policy.Change{New: badRule()})
	if err != nil {
		t.Fatal(err)
	}
	return v.total
}

func TestStoreMeshConfigMap(t *testing.T) {
	s := deepDive(t)
	// Without the *.local ISTIO_MUTUAL rule, clients use auto mTLS; bad-rule
	// still conflicts, whatever auto mTLS says.
	mesh := func(ns, data string) *corev1.ConfigMap {
		return &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: policy.MeshConfigMapName},
			Data:       map[string]string{"mesh": data},
		}
	}
	if err := s.Apply(mesh("istio-system", "rootNamespace: elsewhere")); err != nil {
		t.Fatal(err)
	}
	if got := s.state.Load().Mesh().RootNamespace; got != "elsewhere" {
		t.Errorf("root namespace %q after the ConfigMap, want elsewhere", got)
	}
	// Now the mesh policies in istio-system are plain namespace policies:
	// httpbin in default is PERMISSIVE, and bad-rule conflicts with nothing.
	if n := decideBadRule(t, s); n != 0 {
		t.Errorf("bad-rule creates %d conflicts under root namespace elsewhere, want 0", n)
	}
	if err := s.Apply(mesh("istio-system", "enableAutoMtls: false")); err != nil {
		t.Fatal(err)
	}
	if m := s.state.Load().Mesh(); m.RootNamespace != "istio-system" || m.AutoMTLS {
		t.Errorf("mesh %+v: the ConfigMap is laid over the options, not over the previous ConfigMap", m)
	}
	if err := s.Apply(mesh("other", "enableAutoMtls: true")); err != nil {
		t.Fatal(err)
	}
	if s.state.Load().Mesh().AutoMTLS {
		t.Error("a ConfigMap outside the root namespace changed the mesh")
	}
	if err := s.Apply(mesh("istio-system", "rootNamespace: [")); err == nil {
		t.Error("a malformed ConfigMap was accepted")
	}
	if err := s.Remove(mesh("istio-system", "")); err != nil {
		t.Fatal(err)
	}
	if m := s.state.Load().Mesh(); !reflect.DeepEqual(m, policy.DefaultMesh()) {
		t.Errorf("mesh %+v after the ConfigMap is deleted, want the options' %+v", m, policy.DefaultMesh())
	}
	if n := decideBadRule(t, s); n != 1 {
		t.Errorf("bad-rule creates %d conflicts, want 1", n)
	}
}

func TestStoreEvents(t *testing.T) {
	s := deepDive(t)
	h := s.eventHandler(log.Log)
	// A v1beta1 rule that makes httpbin's clients send plaintext already:
	// bad-rule adds nothing new.
	older := &networkingv1beta1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "a-older", CreationTimestamp: created}}
	older.Spec.Host = "httpbin"
	older.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_DISABLE}}
	h.OnAdd(older, true)
	if n := decideBadRule(t, s); n != 0 {
		t.Errorf("bad-rule creates %d conflicts next to an older DISABLE rule, want 0", n)
	}
	// An update the engine cannot read drops the stale version.
	broken := older.DeepCopy()
	broken.Spec.TrafficPolicy.Tls.Mode = 9
	h.OnUpdate(older, broken)
	if n := decideBadRule(t, s); n != 1 {
		t.Errorf("bad-rule creates %d conflicts once the older rule is unreadable, want 1", n)
	}
	h.OnUpdate(broken, older)
	h.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "default/a-older", Obj: older})
	if n := decideBadRule(t, s); n != 1 {
		t.Errorf("bad-rule creates %d conflicts after the older rule is deleted, want 1", n)
	}

	// Namespaces: the mode label, and termination.
	h.OnUpdate(nil, namespace("default", map[string]string{ModeLabel: "audit"}))
	if ns := s.namespace("default"); ns.mode != "audit" || !ns.hasMode || ns.terminating {
		t.Errorf("namespace info %+v", ns)
	}
	gone := namespace("default", nil)
	gone.DeletionTimestamp = &created
	h.OnUpdate(nil, gone)
	if ns := s.namespace("default"); ns.hasMode || !ns.terminating {
		t.Errorf("namespace info %+v", ns)
	}
	h.OnDelete(gone)
	if ns := s.namespace("default"); ns != (namespaceInfo{}) {
		t.Errorf("namespace info %+v after delete", ns)
	}
}

func TestOptions(t *testing.T) {
	o := Options{}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	d := DefaultOptions()
	d.AutoMTLS = false // the options whose zero values are not defaulted
	d.Audit.LeaderElect = false
	if o != d {
		t.Errorf("zero options validate to %+v, want %+v", o, d)
	}
	for _, bad := range []Options{{DefaultMode: Off}, {DefaultMode: "strict"}, {Unsynced: "maybe"}, {Port: 70000},
		{DecisionTimeout: -time.Second}, {OnTimeout: "retry"}, {Disclose: "some"}, {ShutdownDelay: -time.Second}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
	if !strings.Contains(modeWarning("x", Enforce), ModeLabel) {
		t.Error("the mode warning does not name the label")
	}
}

func TestFlags(t *testing.T) {
	o := DefaultOptions()
	fs := pflag.NewFlagSet("mtlsguard", pflag.ContinueOnError)
	o.AddFlags(fs)
	err := fs.Parse([]string{"--default-mode=audit", "--unsynced=deny", "--auto-mtls=false", "--root-namespace=mesh",
		"--cluster-domain=example.org", "--webhook-port=8443", "--webhook-host=127.0.0.1", "--cert-dir=/certs",
		"--health-probe-bind-address=:9081", "--metrics-bind-address=0", "--decision-timeout=750ms", "--on-timeout=deny",
		"--report-api=wgpolicyk8s", "--leader-elect=false", "--leader-election-namespace=ops",
		"--client-ca-file=/ca.pem", "--shutdown-delay=1s", "--disclose=all"})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Host: "127.0.0.1", Port: 8443, CertDir: "/certs", HealthProbeBindAddress: ":9081", MetricsBindAddress: "0",
		DefaultMode: Audit, Unsynced: UnsyncedDeny, DecisionTimeout: 750 * time.Millisecond, OnTimeout: OnTimeoutDeny,
		RootNamespace: "mesh", AutoMTLS: false, ClusterDomain: "example.org",
		ClientCAFile: "/ca.pem", ShutdownDelay: time.Second, Disclose: DiscloseAll,
		Audit: audit.Options{ReportAPI: audit.WGPolicy, LeaderElect: false, LeaderElectionNamespace: "ops"}}
	if o != want {
		t.Errorf("options %+v, want %+v", o, want)
	}
	for _, arg := range []string{"--default-mode=off", "--default-mode=Enforce", "--unsynced=yes", "--report-api=policyreport",
		"--decision-timeout=0", "--decision-timeout=-1s", "--decision-timeout=2", "--on-timeout=wait",
		"--disclose=none", "--shutdown-delay=0"} {
		o := DefaultOptions()
		fs := pflag.NewFlagSet("mtlsguard", pflag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o.AddFlags(fs)
		if err := fs.Parse([]string{arg}); err == nil {
			t.Errorf("%s: no error", arg)
		}
	}
}

func TestSamePod(t *testing.T) {
	base := sidecarPod("default", "p", "app")
	base.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	mutate := map[string]func(p *corev1.Pod){
		"label": func(p *corev1.Pod) { p.Labels["version"] = "v2" },
		"no sidecar": func(p *corev1.Pod) {
			delete(p.Labels, policy.TLSModeLabel)
			p.Annotations = nil
			p.Spec.Containers = p.Spec.Containers[:1]
		},
		"port":  func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 9090 },
		"phase": func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded },
		"ambient redirection": func(p *corev1.Pod) {
			p.Annotations = map[string]string{policy.RedirectionAnnotation: "enabled"}
		},
		"host network": func(p *corev1.Pod) { p.Spec.HostNetwork = true },
	}
	for name, m := range mutate {
		p := base.DeepCopy()
		m(p)
		if samePod(base, p) {
			t.Errorf("%s: a change the engine reads is skipped", name)
		}
	}
	status := base.DeepCopy()
	status.ResourceVersion = "2"
	status.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if !samePod(base, status) {
		t.Error("a status-only update is applied")
	}
	if samePod(base, namespace("default", nil)) {
		t.Error("samePod of a Namespace")
	}
}

// TestOnChangeSeesEveryObject: the audit's hook is told of each applied
// and removed object, after the state has it.
func TestOnChangeSeesEveryObject(t *testing.T) {
	s := deepDive(t)
	var got []string
	s.OnChange = func(obj runtime.Object, deleted bool) {
		var seen bool
		_ = s.View(func(st *policy.State) error {
			_, seen = st.FindPod("default", "extra")
			return nil
		})
		got = append(got, fmt.Sprintf("%s deleted=%v inState=%v", describe(obj), deleted, seen))
	}
	p := sidecarPod("default", "extra", "httpbin")
	if err := s.Apply(p); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(p); err != nil {
		t.Fatal(err)
	}
	want := []string{"*v1.Pod default/extra deleted=false inState=true", "*v1.Pod default/extra deleted=true inState=false"}
	if !slices.Equal(got, want) {
		t.Errorf("OnChange calls %q, want %q", got, want)
	}
}

// TestNamespaceDataplaneLabelReachesTheState: relabelling a namespace
// ambient through the informer's handler makes its plain pods ztunnel
// clients and captured servers in the state decisions read.
func TestNamespaceDataplaneLabelReachesTheState(t *testing.T) {
	plain := sidecarPod("legacy", "web-1", "web")
	plain.Labels = map[string]string{"app": "web"}
	plain.Annotations = nil
	plain.Spec.Containers = plain.Spec.Containers[:1]
	s := deepDive(t, namespace("legacy", nil), service("legacy", "web", 80, 8080), plain)
	h := s.eventHandler(log.Log)
	h.OnUpdate(namespace("legacy", nil), namespace("legacy", map[string]string{policy.DataplaneModeLabel: "ambient"}))
	var rows []policy.ViewRow
	if err := s.View(func(st *policy.State) error {
		groups, err := st.Table(policy.Query{Namespace: "legacy"})
		rows = policy.Expand(groups)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rows {
		if !r.View.Ztunnel {
			t.Errorf("legacy has a sidecar view %s", r.View)
		}
		if r.Host == "web.legacy.svc.cluster.local" {
			found = true
			if ep := r.Endpoints[0]; ep.ServerMode != policy.AmbientStrict || ep.ClientSends != policy.HBONE || !ep.OK {
				t.Errorf("web endpoint %+v, want an ambient STRICT pod reached over HBONE", ep)
			}
		}
	}
	if !found {
		t.Errorf("no ztunnel row for web: %+v", rows)
	}
}
