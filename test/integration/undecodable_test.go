package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// futureMode is a TLS mode a newer Istio might add: this version's types
// do not know it.
const futureMode = "FUTURE_MODE"

// allowFutureTLSMode adds futureMode to every enum of the DestinationRule
// CRD that lists ISTIO_MUTUAL, as a newer Istio's CRD would, and restores
// the CRD when the test ends.
func allowFutureTLSMode(t *testing.T) {
	t.Helper()
	s := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := types.NamespacedName{Name: "destinationrules.networking.istio.io"}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := cl.Get(ctx, key, crd); err != nil {
		t.Fatal(err)
	}
	original := crd.DeepCopy().Spec.Versions
	added := 0
	for i := range crd.Spec.Versions {
		if v := crd.Spec.Versions[i].Schema; v != nil {
			added += addEnumValue(v.OpenAPIV3Schema, "ISTIO_MUTUAL", futureMode)
		}
	}
	if added == 0 {
		t.Fatal("the DestinationRule CRD has no enum listing ISTIO_MUTUAL")
	}
	if err := cl.Update(ctx, crd); err != nil {
		t.Fatal(err)
	}
	t.Logf("added %s to %d enums of the DestinationRule CRD", futureMode, added)
	t.Cleanup(func() {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := cl.Get(ctx, key, crd); err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		crd.Spec.Versions = original
		if err := cl.Update(ctx, crd); err != nil {
			t.Errorf("cleanup: restore the DestinationRule CRD: %v", err)
		}
	})
}

// addEnumValue appends value to every enum below p that holds member, and
// returns how many it changed.
func addEnumValue(p *apiextensionsv1.JSONSchemaProps, member, value string) int {
	if p == nil {
		return 0
	}
	n := 0
	if slices.ContainsFunc(p.Enum, func(j apiextensionsv1.JSON) bool { return string(j.Raw) == `"`+member+`"` }) {
		p.Enum = append(p.Enum, apiextensionsv1.JSON{Raw: []byte(`"` + value + `"`)})
		n++
	}
	for k, c := range p.Properties {
		n += addEnumValue(&c, member, value)
		p.Properties[k] = c
	}
	if p.Items != nil {
		n += addEnumValue(p.Items.Schema, member, value)
		for i := range p.Items.JSONSchemas {
			n += addEnumValue(&p.Items.JSONSchemas[i], member, value)
		}
	}
	if p.AdditionalProperties != nil {
		n += addEnumValue(p.AdditionalProperties.Schema, member, value)
	}
	for _, list := range [][]apiextensionsv1.JSONSchemaProps{p.AllOf, p.OneOf, p.AnyOf} {
		for i := range list {
			n += addEnumValue(&list[i], member, value)
		}
	}
	return n
}

// futureRule is a DestinationRule whose TLS mode this version's types
// cannot decode, in kube-system, which the webhook does not intercept (a
// newer Istio's CRD admits it; its writer may not be checked at all).
func futureRule() *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1",
		"kind":       "DestinationRule",
		"metadata":   map[string]any{"namespace": "kube-system", "name": "future"},
		"spec": map[string]any{
			"host":          "*.local",
			"trafficPolicy": map[string]any{"tls": map[string]any{"mode": futureMode}},
		},
	}}
	return u
}

// TestUndecodableRuleIsLeftOutAndTheCacheSyncs stores a DestinationRule
// whose TLS mode only a newer Istio's CRD admits, then starts the webhook:
// its cache must sync, leave that one rule out (counted by kind), and
// check everything else.
func TestUndecodableRuleIsLeftOutAndTheCacheSyncs(t *testing.T) {
	allowFutureTLSMode(t)
	c := newCluster(t)
	bad := futureRule()
	// The CRD's new schema takes effect a moment after the update.
	eventually(t, 30*time.Second, func() error {
		err := c.Create(context.Background(), bad.DeepCopy())
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
	c.deleteAtCleanup(t, bad)

	start := time.Now()
	r := startWebhook(t) // fails the test unless /readyz says synced
	t.Logf("cache synced, /readyz OK, %v after start", time.Since(start).Round(time.Millisecond))

	deepDive(t, c)
	// Every other object is checked: the Deep-Dive's bad-rule is denied.
	waitDenies(t, c)
	if got := undecodableCount(t, r); got != "1" {
		t.Errorf("%s = %q after the list, want 1 (the rule in kube-system)", undecodableMetric, got)
	}

	// The same through the watch: one more such rule is counted, and the
	// cache stays synced.
	another := futureRule()
	another.SetName("future-2")
	c.create(t, another)
	c.deleteAtCleanup(t, another)
	eventually(t, 30*time.Second, func() error {
		if got := undecodableCount(t, r); got != "2" {
			return fmt.Errorf("%s = %q after a watch event, want 2", undecodableMetric, got)
		}
		return nil
	})
	if err := get("http://" + r.options.HealthProbeBindAddress + "/readyz"); err != nil {
		t.Errorf("readiness after the watch event: %v", err)
	}
	waitDenies(t, c)
}

const undecodableMetric = `mtlsguard_cache_undecodable_objects_total{kind="DestinationRule"}`

// undecodableCount reads undecodableMetric from the running webhook.
func undecodableCount(t *testing.T, r *running) string {
	t.Helper()
	for _, l := range strings.Split(r.metrics(t), "\n") {
		if v, ok := strings.CutPrefix(l, undecodableMetric+" "); ok {
			return v
		}
	}
	return ""
}
