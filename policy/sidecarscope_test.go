package policy

import (
	"strings"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func sidecarOf(ns, name string, hosts []string, outbound *networkingapi.OutboundTrafficPolicy) *networkingv1.Sidecar {
	sc := &networkingv1.Sidecar{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: at(0)}}
	if hosts != nil {
		sc.Spec.Egress = []*networkingapi.IstioEgressListener{{Hosts: hosts}}
	}
	sc.Spec.OutboundTrafficPolicy = outbound
	return sc
}

// clientRow is what foo/sleep's view has for httpbin.bar:8000: its
// DESTINATION RULE column and status, or "no row".
func clientRow(t *testing.T, st *State) string {
	t.Helper()
	groups, err := st.Table(Query{Pod: "foo/sleep", Host: "httpbin.bar.svc.cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) == 0 {
		return "no row"
	}
	return groups[0].Row.DestinationRule + " " + groups[0].Row.Status.String()
}

// TestOutboundTrafficPolicyDecidesWhatAMissingClusterDoes covers the
// extended semantics doc §3.4 and §3.5 (C1, C2, C6): a Sidecar's own
// policy wins, even empty ({} is REGISTRY_ONLY, the enum's zero value);
// without one, the mesh's (default ALLOW_ANY) applies.
func TestOutboundTrafficPolicyDecidesWhatAMissingClusterDoes(t *testing.T) {
	allowAny := &networkingapi.OutboundTrafficPolicy{Mode: networkingapi.OutboundTrafficPolicy_ALLOW_ANY}
	registryOnly := &networkingapi.OutboundTrafficPolicy{Mode: networkingapi.OutboundTrafficPolicy_REGISTRY_ONLY}
	ownOnly := []string{"./*", "istio-system/*"}
	tests := map[string]struct {
		sidecar *networkingv1.Sidecar
		mesh    string // the mesh ConfigMap's outboundTrafficPolicy.mode
		want    string
	}{
		"no Sidecar: a cluster, auto mTLS":                  {want: "- OK"},
		"Sidecar importing bar":                             {sidecar: sidecarOf("foo", "default", []string{"bar/*"}, nil), want: "- OK"},
		"Sidecar without egress imports */*":                {sidecar: sidecarOf("foo", "default", nil, registryOnly), want: "- OK"},
		"Sidecar dropping bar, mesh default":                {sidecar: sidecarOf("foo", "default", ownOnly, nil), want: "PassthroughCluster CONFLICT"},
		"Sidecar dropping bar, mesh REGISTRY_ONLY":          {sidecar: sidecarOf("foo", "default", ownOnly, nil), mesh: "REGISTRY_ONLY", want: "no row"},
		"Sidecar ALLOW_ANY over a REGISTRY_ONLY mesh":       {sidecar: sidecarOf("foo", "default", ownOnly, allowAny), mesh: "REGISTRY_ONLY", want: "PassthroughCluster CONFLICT"},
		"Sidecar with an empty policy is REGISTRY_ONLY":     {sidecar: sidecarOf("foo", "default", ownOnly, &networkingapi.OutboundTrafficPolicy{}), want: "no row"},
		"Sidecar excluding bar within its listener":         {sidecar: sidecarOf("foo", "default", []string{"*/*", "~bar/*"}, nil), want: "PassthroughCluster CONFLICT"},
		"Sidecar importing the exact host":                  {sidecar: sidecarOf("foo", "default", []string{"bar/httpbin.bar.svc.cluster.local"}, nil), want: "- OK"},
		"Sidecar importing a short name matches nothing":    {sidecar: sidecarOf("foo", "default", []string{"bar/httpbin"}, nil), want: "PassthroughCluster CONFLICT"},
		"root Sidecar: . is the client's namespace":         {sidecar: sidecarOf("istio-system", "default", ownOnly, nil), want: "PassthroughCluster CONFLICT"},
		"root Sidecar importing bar for every namespace":    {sidecar: sidecarOf("istio-system", "default", []string{"bar/*"}, nil), want: "- OK"},
		"Sidecar of another namespace does not apply":       {sidecar: sidecarOf("baz", "default", ownOnly, nil), want: "- OK"},
		"Sidecar egress HTTP_PROXY port imports every port": {sidecar: httpProxySidecar(), want: "- OK"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			snap := Snapshot{
				Services:            []*corev1.Service{svc("bar", "httpbin", 8000, intstrInt(8080))},
				Pods:                []*corev1.Pod{podOf("bar", "httpbin-1", "httpbin", true, nil), podOf("foo", "sleep", "sleep", true, nil)},
				PeerAuthentications: []*securityv1.PeerAuthentication{pa("bar", "default", strict)},
			}
			if tc.sidecar != nil {
				snap.Sidecars = []*networkingv1.Sidecar{tc.sidecar}
			}
			st := mustState(t, snap)
			if tc.mesh != "" {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: MeshConfigMapName, Namespace: "istio-system"},
					Data: map[string]string{"mesh": "outboundTrafficPolicy:\n  mode: " + tc.mesh + "\n"}}
				if err := st.Apply(cm); err != nil {
					t.Fatal(err)
				}
			}
			if got := clientRow(t, st); got != tc.want {
				t.Errorf("foo/sleep -> httpbin.bar:8000: %q, want %q", got, tc.want)
			}
		})
	}
}

func httpProxySidecar() *networkingv1.Sidecar {
	sc := sidecarOf("foo", "default", nil, nil)
	sc.Spec.Egress = []*networkingapi.IstioEgressListener{{
		Port:  &networkingapi.SidecarPort{Number: 3128, Protocol: "HTTP_PROXY", Name: "proxy"},
		Hosts: []string{"bar/*"},
	}}
	return sc
}

func TestMeshOutboundTrafficPolicyRejectsUnknownModes(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: MeshConfigMapName, Namespace: "istio-system"},
		Data: map[string]string{"mesh": "outboundTrafficPolicy:\n  mode: SOMETIMES\n"}}
	_, err := DefaultMesh().WithConfigMap(cm)
	if err == nil || !strings.Contains(err.Error(), `ConfigMap istio-system/istio: data.mesh: outboundTrafficPolicy.mode: unknown mode "SOMETIMES"`) {
		t.Fatalf("err = %v", err)
	}
}

// TestOneServicePerHostForAClient covers sidecar.go appendSidecarServices:
// a Kubernetes Service wins over a ServiceEntry of the same host, and of two
// entries the oldest.
func TestOneServicePerHostForAClient(t *testing.T) {
	entry := func(ns, name string, sec int) *networkingv1.ServiceEntry {
		se := &networkingv1.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: at(sec)}}
		se.Spec.Hosts = []string{"shared.example"}
		se.Spec.Location = networkingapi.ServiceEntry_MESH_INTERNAL
		se.Spec.Resolution = networkingapi.ServiceEntry_STATIC
		se.Spec.Ports = []*networkingapi.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}}
		se.Spec.Endpoints = []*networkingapi.WorkloadEntry{{Address: "10.0.0.1", Labels: map[string]string{"owner": name}}}
		return se
	}
	st := mustState(t, Snapshot{
		Pods:           []*corev1.Pod{podOf("foo", "sleep", "sleep", true, nil)},
		ServiceEntries: []*networkingv1.ServiceEntry{entry("a", "newer", 10), entry("b", "older", 5)},
	})
	groups, err := st.Table(Query{Pod: "foo/sleep"})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || len(groups[0].Row.Endpoints) != 1 || !strings.Contains(groups[0].Row.Endpoints[0].Pod, "b/older") {
		t.Fatalf("rows %+v, want one row of the older entry b/older", groups)
	}
}
