package webhook

import (
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	mtlsscheme "github.com/mtlsguard/mtlsguard/internal/scheme"
	"github.com/mtlsguard/mtlsguard/policy"
)

var scheme = mtlsscheme.New()

// futureUnstructured is a DestinationRule as a newer Istio's CRD admits
// it: a TLS mode this version's types do not know.
func futureUnstructured(ns, name string) *unstructured.Unstructured {
	return ruleUnstructured(ns, name, "FUTURE_MODE")
}

func ruleUnstructured(ns, name, mode string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1",
		"kind":       "DestinationRule",
		"metadata":   map[string]any{"namespace": ns, "name": name, "resourceVersion": "7"},
		"spec": map[string]any{
			"host":          "*.local",
			"trafficPolicy": map[string]any{"tls": map[string]any{"mode": mode}},
		},
	}}
}

// tableRules lists the DESTINATION RULE column of the state's table.
func tableRules(t *testing.T, s *Store) string {
	t.Helper()
	var rules []string
	groups, err := s.state.Load().Table(policy.Query{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		rules = append(rules, g.Row.DestinationRule)
	}
	return strings.Join(rules, " ")
}

func TestDecodeTypedDecodesARuleItsTypesRead(t *testing.T) {
	got, err := decodeTyped(scheme)(ruleUnstructured("default", "r", "ISTIO_MUTUAL"))
	if err != nil {
		t.Fatal(err)
	}
	dr, ok := got.(*networkingv1.DestinationRule)
	if !ok {
		t.Fatalf("decoded %T, want *v1.DestinationRule", got)
	}
	if dr.Name != "r" || dr.Namespace != "default" || dr.ResourceVersion != "7" ||
		dr.Spec.Host != "*.local" || dr.Spec.TrafficPolicy.Tls.Mode.String() != "ISTIO_MUTUAL" {
		t.Errorf("decoded %+v", dr)
	}
	// The transform may meet its own output again: it passes through.
	again, err := decodeTyped(scheme)(dr)
	if err != nil || again != any(dr) {
		t.Errorf("second pass: %v, %v", again, err)
	}
}

func TestDecodeTypedKeepsAnUndecodableRuleAsAPlaceholder(t *testing.T) {
	got, err := decodeTyped(scheme)(futureUnstructured("default", "future"))
	if err != nil {
		t.Fatalf("the transform must not fail (a failure fails the whole list): %v", err)
	}
	u, ok := got.(*undecodable)
	if !ok {
		t.Fatalf("got %T, want *undecodable", got)
	}
	if _, ok := u.Object.(*networkingv1.DestinationRule); !ok || u.GetName() != "future" || u.GetNamespace() != "default" || u.GetResourceVersion() != "7" {
		t.Errorf("placeholder %T %s/%s rv %s", u.Object, u.GetNamespace(), u.GetName(), u.GetResourceVersion())
	}
	want := `DestinationRule default/future (networking.istio.io/v1): not readable by this version's types (a value of a newer Istio?): unknown value "\"FUTURE_MODE\""`
	if !strings.HasPrefix(u.err.Error(), want) {
		t.Errorf("error %q, want it to begin %q", u.err, want)
	}
	if c, ok := u.DeepCopyObject().(*undecodable); !ok || c.Object == u.Object || c.GetName() != "future" {
		t.Errorf("DeepCopyObject: %#v", c)
	}
}

// TestUndecodableRuleIsLoggedCountedAndLeftOut: through the informer's
// handler, the placeholder of an undecodable rule removes the rule's
// previous version from the state, is logged naming the rule, and counted;
// its delete is a no-op.
func TestUndecodableRuleIsLoggedCountedAndLeftOut(t *testing.T) {
	s := deepDive(t)
	var logged []string
	h := s.eventHandler(funcr.New(func(prefix, args string) { logged = append(logged, args) }, funcr.Options{}))
	good := destRule("default", "future", "*.local", networkingapi.ClientTLSSettings_ISTIO_MUTUAL)
	h.OnAdd(good, false)
	if !strings.Contains(tableRules(t, s), "future/default") {
		t.Fatalf("future is not in the state before the test")
	}
	placeholder, _ := decodeTyped(scheme)(futureUnstructured("default", "future"))
	before := counterValue(t, "DestinationRule")
	h.OnUpdate(good, placeholder)
	if strings.Contains(tableRules(t, s), "future/default") {
		t.Errorf("the previous version of future is still in the state")
	}
	if got := counterValue(t, "DestinationRule") - before; got != 1 {
		t.Errorf("counted %v, want 1", got)
	}
	all := strings.Join(logged, "\n")
	if !strings.Contains(all, "object left out of the mTLS state") || !strings.Contains(all, "v1.DestinationRule default/future") || !strings.Contains(all, "FUTURE_MODE") {
		t.Errorf("log %q does not name the object and its value", all)
	}
	logged = nil
	h.OnDelete(placeholder)
	if len(logged) > 0 {
		t.Errorf("delete of the placeholder logged %q", logged)
	}
	var _ runtime.Object = placeholder.(runtime.Object)
}

func counterValue(t *testing.T, kind string) float64 {
	t.Helper()
	// Gathered as /metrics shows it; the metric has only this label.
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "mtlsguard_cache_undecodable_objects_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if l := m.GetLabel(); len(l) == 1 && l[0].GetValue() == kind {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestDecodeTypedKeepsAnUndecodablePeerAuthenticationAsAPlaceholder: the
// same for the other Istio kind, an mTLS mode of a newer Istio.
func TestDecodeTypedKeepsAnUndecodablePeerAuthenticationAsAPlaceholder(t *testing.T) {
	pa := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "security.istio.io/v1",
		"kind":       "PeerAuthentication",
		"metadata":   map[string]any{"namespace": "default", "name": "p"},
		"spec":       map[string]any{"mtls": map[string]any{"mode": "SUPER_STRICT"}},
	}}
	got, err := decodeTyped(scheme)(pa)
	if err != nil {
		t.Fatal(err)
	}
	u, ok := got.(*undecodable)
	if !ok {
		t.Fatalf("got %T, want *undecodable", got)
	}
	if want := `PeerAuthentication default/p (security.istio.io/v1): not readable by this version's types`; !strings.HasPrefix(u.err.Error(), want) || !strings.Contains(u.err.Error(), "SUPER_STRICT") {
		t.Errorf("error %q, want it to begin %q and name the value", u.err, want)
	}
}
