package policy

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestIncrementalPodUpdatesMatchAFreshState applies and removes pods one by
// one and checks the client views against a state built from scratch.
func TestIncrementalPodUpdatesMatchAFreshState(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	live := map[string]*corev1.Pod{}
	st := mustState(t, Snapshot{})
	for step := 0; step < 400; step++ {
		name := fmt.Sprintf("p%d", r.IntN(40))
		ns := fmt.Sprintf("ns%d", r.IntN(3))
		key := ns + "/" + name
		if p, ok := live[key]; ok && r.IntN(3) == 0 {
			delete(live, key)
			if err := st.Remove(p); err != nil {
				t.Fatal(err)
			}
		} else {
			p := podOf(ns, name, "app", r.IntN(4) != 0, nil)
			live[key] = p
			if err := st.Apply(p); err != nil {
				t.Fatal(err)
			}
		}
		var pods []*corev1.Pod
		for _, p := range live {
			pods = append(pods, p)
		}
		fresh := mustState(t, Snapshot{Pods: pods})
		for _, ns := range []string{"ns0", "ns1", "ns2"} {
			got, want := viewPods(st, ns), viewPods(fresh, ns)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d, %s: views %v, want %v", step, ns, got, want)
			}
		}
		if got, want := st.totalViews, fresh.totalViews; got != want {
			t.Fatalf("step %d: %d views counted, want %d", step, got, want)
		}
	}
}

func viewPods(st *State, ns string) [][]string {
	var out [][]string
	if n := st.ns(ns); n != nil {
		for _, v := range n.views {
			out = append(out, v.Pods)
		}
	}
	return out
}

func TestRemovingANamespaceKeepsItsObjectsUntilTheirOwnDeletes(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "foo", Labels: map[string]string{InjectionLabel: "enabled"}}}
	s := svc("foo", "httpbin", 8000, intstrInt(8080))
	st := mustState(t, Snapshot{Namespaces: []*corev1.Namespace{ns}, Services: []*corev1.Service{s}})
	if err := st.Remove(ns); err != nil {
		t.Fatal(err)
	}
	if len(st.ns("foo").views) != 0 {
		t.Error("a deleted namespace keeps its injection view")
	}
	if st.servicesByHost.get("httpbin.foo.svc.cluster.local") == nil {
		t.Error("service dropped before its own delete")
	}
	if err := st.Remove(s); err != nil {
		t.Fatal(err)
	}
	if st.servicesByHost.get("httpbin.foo.svc.cluster.local") != nil {
		t.Error("service still indexed after its delete")
	}
}

func TestMeshConfigMapLaysOverTheConfiguredMesh(t *testing.T) {
	base := DefaultMesh()
	base.AutoMTLS = false // as set by a flag
	st := mustState(t, Snapshot{Mesh: base})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "istio-system"},
		Data: map[string]string{"mesh": "rootNamespace: mesh-root\nenableAutoMtls: true\n"}}
	if err := st.Apply(cm); err != nil {
		t.Fatal(err)
	}
	if m := st.Mesh(); m.RootNamespace != "mesh-root" || !m.AutoMTLS {
		t.Fatalf("after apply: %+v", m)
	}
	cm.Data["mesh"] = "rootNamespace: mesh-root\n" // enableAutoMtls removed: back to the flag
	if err := st.Apply(cm); err != nil {
		t.Fatal(err)
	}
	if m := st.Mesh(); m.RootNamespace != "mesh-root" || m.AutoMTLS {
		t.Fatalf("after removing a field: %+v", m)
	}
	if err := st.Remove(cm); err != nil {
		t.Fatal(err)
	}
	if m := st.Mesh(); !reflect.DeepEqual(m, base) {
		t.Fatalf("after delete: %+v, want %+v", m, base)
	}
}
