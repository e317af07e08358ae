package webhook

import (
	"context"
	"net/http"
	"strings"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// vmEntry is a MESH_INTERNAL ServiceEntry for the VMs of namespace default
// labelled app: vm.
func vmEntry() *networkingv1.ServiceEntry {
	se := &networkingv1.ServiceEntry{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.istio.io/v1", Kind: "ServiceEntry"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "vm"},
	}
	se.Spec.Hosts = []string{"vm.internal"}
	se.Spec.Location = networkingapi.ServiceEntry_MESH_INTERNAL
	se.Spec.Resolution = networkingapi.ServiceEntry_STATIC
	se.Spec.WorkloadSelector = &networkingapi.WorkloadSelector{Labels: map[string]string{"app": "vm"}}
	se.Spec.Ports = []*networkingapi.ServicePort{{Number: 8080, Name: "http", Protocol: "HTTP"}}
	return se
}

// vm is a WorkloadEntry for a VM with a sidecar (it names a serviceAccount).
func vm() *networkingv1.WorkloadEntry {
	we := &networkingv1.WorkloadEntry{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.istio.io/v1", Kind: "WorkloadEntry"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "vm-1", CreationTimestamp: created},
	}
	we.Spec.Address = "10.0.0.1"
	we.Spec.ServiceAccount = "vm"
	we.Spec.Labels = map[string]string{"app": "vm"}
	return we
}

// narrowSidecar is a Sidecar of default that imports sleep and istio-system
// only: default's clients lose their cluster for httpbin.
func narrowSidecar() *networkingv1.Sidecar {
	sc := &networkingv1.Sidecar{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.istio.io/v1", Kind: "Sidecar"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "default"},
	}
	sc.Spec.Egress = []*networkingapi.IstioEgressListener{{Hosts: []string{"./sleep.default.svc.cluster.local", "istio-system/*"}}}
	return sc
}

func TestValidatorEntryKinds(t *testing.T) {
	// The Deep-Dive with a mesh-wide ISTIO_MUTUAL rule, a DISABLE rule of
	// default for vm.internal and a STRICT VM: the entry that makes
	// vm.internal a mesh service is a new conflict.
	disableVM := destRule("default", "vm-plaintext", "vm.internal", networkingapi.ClientTLSSettings_DISABLE)
	store := deepDive(t, vm(), disableVM)

	t.Run("a ServiceEntry that exposes a STRICT VM to a DISABLE rule is denied", func(t *testing.T) {
		v := testValidator(t, serviceEntries, store)
		resp := v.Handle(context.Background(), request(t, admissionv1.Create, vmEntry(), nil))
		if resp.Allowed || resp.Result.Code != http.StatusForbidden ||
			!strings.Contains(resp.Result.Message, "ServiceEntry default/vm would create 1 new mTLS conflict") ||
			!strings.Contains(resp.Result.Message, "vm.internal:8080") {
			t.Fatalf("allowed %v, code %d, message:\n%s", resp.Allowed, resp.Result.Code, resp.Result.Message)
		}
	})

	t.Run("the same entry in v1alpha3 is denied the same", func(t *testing.T) {
		se := vmEntry()
		old := &networkingv1alpha3.ServiceEntry{ObjectMeta: se.ObjectMeta}
		se.Spec.DeepCopyInto(&old.Spec)
		old.APIVersion, old.Kind = "networking.istio.io/v1alpha3", "ServiceEntry"
		resp := testValidator(t, serviceEntries, store).Handle(context.Background(), request(t, admissionv1.Create, old, nil))
		if resp.Allowed {
			t.Fatalf("v1alpha3 ServiceEntry allowed: %s", resp.Result.Message)
		}
	})

	t.Run("a MESH_EXTERNAL entry is admitted", func(t *testing.T) {
		se := vmEntry()
		se.Spec.Location = networkingapi.ServiceEntry_MESH_EXTERNAL
		resp := testValidator(t, serviceEntries, store).Handle(context.Background(), request(t, admissionv1.Create, se, nil))
		if !resp.Allowed {
			t.Fatalf("denied: %s", resp.Result.Message)
		}
	})

	t.Run("a ServiceEntry that cannot be read is rejected naming the field", func(t *testing.T) {
		se := vmEntry()
		se.Spec.Ports[0].Number = 70000
		resp := testValidator(t, serviceEntries, store).Handle(context.Background(), request(t, admissionv1.Create, se, nil))
		if resp.Allowed || resp.Result.Code != http.StatusBadRequest || !strings.Contains(resp.Result.Message, "spec.ports[0].number") {
			t.Fatalf("allowed %v, code %d: %s", resp.Allowed, resp.Result.Code, resp.Result.Message)
		}
	})

	withEntry := deepDive(t, vm(), vmEntry(), destRule("default", "vm-mtls", "vm.internal", networkingapi.ClientTLSSettings_ISTIO_MUTUAL))
	t.Run("a WorkloadEntry labelled tlsMode disabled behind ISTIO_MUTUAL is denied", func(t *testing.T) {
		// vm-mtls sends Istio mTLS; a VM without a sidecar (tlsMode
		// disabled) cannot take it.
		upd := vm()
		upd.Labels = map[string]string{"security.istio.io/tlsMode": "disabled"}
		resp := testValidator(t, workloadEntries, withEntry).Handle(context.Background(), request(t, admissionv1.Update, upd, vm()))
		if resp.Allowed || !strings.Contains(resp.Result.Message, "WorkloadEntry default/vm-1 would create 1 new mTLS conflict") {
			t.Fatalf("allowed %v: %s", resp.Allowed, resp.Result.Message)
		}
	})

	t.Run("a Sidecar that drops httpbin under ALLOW_ANY is denied, and its dry-run too", func(t *testing.T) {
		for _, dry := range []bool{false, true} {
			req := request(t, admissionv1.Create, narrowSidecar(), nil)
			req.DryRun = &dry
			resp := testValidator(t, sidecars, store).Handle(context.Background(), req)
			if resp.Allowed || !strings.Contains(resp.Result.Message, "Sidecar default/default would create") ||
				!strings.Contains(resp.Result.Message, "PassthroughCluster") {
				t.Fatalf("dry-run %v: allowed %v: %s", dry, resp.Allowed, resp.Result.Message)
			}
		}
	})

	t.Run("deleting that Sidecar is admitted", func(t *testing.T) {
		s := deepDive(t, narrowSidecar())
		resp := testValidator(t, sidecars, s).Handle(context.Background(), request(t, admissionv1.Delete, nil, narrowSidecar()))
		if !resp.Allowed {
			t.Fatalf("denied: %s", resp.Result.Message)
		}
	})

	t.Run("in audit mode the Sidecar is admitted with a warning", func(t *testing.T) {
		s := deepDive(t, namespace("default", map[string]string{ModeLabel: "audit", "istio-injection": "enabled"}))
		resp := testValidator(t, sidecars, s).Handle(context.Background(), request(t, admissionv1.Create, narrowSidecar(), nil))
		if !resp.Allowed || len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "httpbin.default:8000 CONFLICT") {
			t.Fatalf("allowed %v, warnings %q", resp.Allowed, resp.Warnings)
		}
	})

	t.Run("a relabelled WorkloadEntry is a change, a relabelled Sidecar is not", func(t *testing.T) {
		a, b := vm(), vm()
		b.Labels = map[string]string{"app": "other"}
		if sameSpec(a, b) {
			t.Error("WorkloadEntries with different labels have the same spec")
		}
		c, d := narrowSidecar(), narrowSidecar()
		d.Labels = map[string]string{"team": "a"}
		if !sameSpec(c, d) {
			t.Error("Sidecars that differ in labels only differ")
		}
		for _, o := range []runtime.Object{vmEntry(), vm(), narrowSidecar()} {
			if err := readable(o); err != nil {
				t.Errorf("readable(%T): %v", o, err)
			}
		}
	})
}
