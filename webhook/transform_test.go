package webhook

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/mtlsguard/mtlsguard/policy"
)

// injectedPod reads testdata/injected-pod.yaml: a Pod as Istio's injector
// and the API server leave it (see the file's header).
func injectedPod(t testing.TB) []byte {
	t.Helper()
	y, err := os.ReadFile("testdata/injected-pod.yaml")
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func decodePod(t testing.TB, j []byte) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{}
	if err := json.Unmarshal(j, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStripPod(t *testing.T) {
	full := decodePod(t, injectedPod(t))
	got, err := StripPod(full.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       full.Namespace,
			Name:            full.Name,
			ResourceVersion: full.ResourceVersion,
			Labels:          full.Labels,
			Annotations:     map[string]string{policy.SidecarStatusAnnotation: ""},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:  "hello",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}},
			}},
			InitContainers:     []corev1.Container{{Name: policy.ProxyContainerName}},
			ServiceAccountName: "default",
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("StripPod =\n%+v\nwant\n%+v", got, want)
	}
	if ns := namespace("x", nil); func() any { o, _ := StripPod(ns); return o }() != ns {
		t.Error("StripPod changed a Namespace")
	}
}

// TestStripPodSameTable checks that the engine sees a stripped Pod exactly
// as the full one, for every sidecar signal and named ports.
func TestStripPodSameTable(t *testing.T) {
	named := service("default", "named", 80, 0)
	named.Spec.Ports[0].TargetPort = intstr.FromString("web")
	withPort := func(p *corev1.Pod) *corev1.Pod {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "web", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}
		return p
	}
	byLabel := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "label", Labels: map[string]string{"app": "label", policy.TLSModeLabel: "istio"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
	byContainer := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "container", Labels: map[string]string{"app": "container"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}, {Name: policy.ProxyContainerName}}},
	}
	byInit := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "native", Labels: map[string]string{"app": "native"}},
		Spec: corev1.PodSpec{
			Containers:     []corev1.Container{{Name: "app"}},
			InitContainers: []corev1.Container{{Name: "istio-init"}, {Name: policy.ProxyContainerName}},
		},
	}
	plain := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "plain", Labels: map[string]string{"app": "plain"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
	}
	done := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "done", Labels: map[string]string{"app": "plain"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodSucceeded},
	}
	// Ambient: the CNI's annotation captures a pod; a host-network pod is
	// never captured, whatever its label says.
	redirected := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "redirected", Labels: map[string]string{"app": "redirected"},
			Annotations: map[string]string{policy.RedirectionAnnotation: "enabled"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
	}
	hostNetwork := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hostnet", Labels: map[string]string{"app": "hostnet", policy.DataplaneModeLabel: "ambient"}},
		Spec:       corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "app"}}},
	}
	namedPod := withPort(sidecarPod("default", "named-1", "named"))
	namedPod.Spec.ServiceAccountName = "named" // its identity must survive
	pods := []*corev1.Pod{byLabel, byContainer, byInit, plain, done, namedPod, decodePod(t, injectedPod(t)), redirected, hostNetwork}
	svcs := []*corev1.Service{named, service("default", "label", 80, 0), service("default", "container", 80, 0),
		service("default", "native", 80, 0), service("default", "plain", 80, 0), service("default", "hello", 80, 0),
		service("default", "redirected", 80, 0), service("default", "hostnet", 80, 0)}

	table := func(pods []*corev1.Pod) string {
		t.Helper()
		st, err := policy.NewState(policy.Snapshot{
			Mesh:       policy.DefaultMesh(),
			Namespaces: []*corev1.Namespace{namespace("default", map[string]string{"istio-injection": "enabled"})},
			Services:   svcs,
			Pods:       pods,
			DestinationRules: []*networkingv1.DestinationRule{
				destRule("default", "off", "named.default.svc.cluster.local", networkingapi.ClientTLSSettings_DISABLE),
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		groups, err := st.Table(policy.Query{})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := policy.WriteTable(&b, policy.Expand(groups), true); err != nil {
			t.Fatal(err)
		}
		for _, g := range groups {
			for _, ep := range g.Row.Endpoints {
				b.WriteString(ep.Pod + " " + ep.Identity + "\n")
			}
		}
		return b.String()
	}
	var stripped []*corev1.Pod
	for _, p := range pods {
		s, err := StripPod(p.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		stripped = append(stripped, s.(*corev1.Pod))
		if policy.HasSidecar(p) != policy.HasSidecar(s.(*corev1.Pod)) {
			t.Errorf("%s: HasSidecar changed", p.Name)
		}
		if policy.Captured(p, false) != policy.Captured(s.(*corev1.Pod), false) {
			t.Errorf("%s: Captured changed", p.Name)
		}
	}
	want, got := table(pods), table(stripped)
	if got != want {
		t.Errorf("table of stripped pods:\n%s\nwant\n%s", got, want)
	}
	t.Logf("\n%s", got)
}

func TestStripMeta(t *testing.T) {
	dr := destRule("default", "r", "h", 0)
	dr.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	dr.Annotations = map[string]string{lastApplied: "{}", "keep": "me"}
	if _, err := stripMeta(dr); err != nil {
		t.Fatal(err)
	}
	if dr.ManagedFields != nil || !reflect.DeepEqual(dr.Annotations, map[string]string{"keep": "me"}) {
		t.Errorf("stripMeta left %v, %v", dr.ManagedFields, dr.Annotations)
	}
}

// TestPodMemory measures the heap a cached Pod costs: as the API server
// sends it, with managedFields dropped (what every other kind costs), and
// after StripPod; plus what the engine's own copy costs. The numbers go
// into docs/performance.md; the test fails only if stripping stops paying.
func TestPodMemory(t *testing.T) {
	const n = 300
	raw := injectedPod(t)
	full := heapPer(t, n, func() any { return decodePod(t, raw) })
	meta := heapPer(t, n, func() any { o, _ := stripMeta(decodePod(t, raw)); return o })
	stripped := heapPer(t, n, func() any { o, _ := StripPod(decodePod(t, raw)); return o })

	st, err := policy.NewState(policy.Snapshot{Mesh: policy.DefaultMesh()})
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	engine := heapPer(t, n, func() any {
		o, _ := StripPod(decodePod(t, raw))
		p := o.(*corev1.Pod)
		// 50 pods a namespace: the engine recomputes a namespace's client
		// views on every pod event.
		p.Namespace, p.Name = "ns-"+strconv.Itoa(i/50), p.Name+"-"+strconv.Itoa(i)
		i++
		if err := st.Apply(p); err != nil {
			t.Fatal(err)
		}
		return nil
	})
	runtime.KeepAlive(st)
	t.Logf("JSON %d bytes; heap per Pod: full %d, without managedFields %d, stripped %d; engine state %d",
		len(raw), full, meta, stripped, engine)
	if stripped*4 > full {
		t.Errorf("stripped Pod costs %d bytes, more than a quarter of the full %d", stripped, full)
	}
}

// heapPer returns the heap bytes retained per object made by mk.
func heapPer(t *testing.T, n int, mk func() any) int {
	t.Helper()
	keep := make([]any, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range keep {
		keep[i] = mk()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	return int(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
}
