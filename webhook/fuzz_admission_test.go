package webhook

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/mtlsguard/mtlsguard/policy"
)

// FuzzAdmission posts arbitrary AdmissionReviews to the webhook's handler,
// over a store built from a small snapshot: the Deep-Dive's cluster with a
// namespace in each mode. The fuzzer varies the request's fields and the
// object and oldObject bytes independently; with raw set, object is the
// whole body. Properties: no panic (controller-runtime's recovery is off);
// every answer is HTTP 200 with a well-formed AdmissionReview response
// carrying the request's UID; a refusal has a status with a 4xx or 503
// code (never 500) and a message; warnings fit Kubernetes' 120 characters.
func FuzzAdmission(f *testing.F) {
	bad := json.RawMessage(mustJSON(badRule()))
	strictPA := json.RawMessage(mustJSON(peerAuth("default", "p", securityapi.PeerAuthentication_MutualTLS_DISABLE)))
	seeds := []struct {
		uid, kind, op, ns, name, sub string
		object, old                  []byte
		raw                          bool
	}{
		{"1", "DestinationRule", "CREATE", "default", "bad-rule", "", bad, nil, false},
		{"2", "DestinationRule", "UPDATE", "default", "bad-rule", "", bad, nil, false}, // no oldObject
		{"3", "DestinationRule", "CREATE", "istio-system", "bad-rule", "", bad, nil, false},
		{"4", "DestinationRule", "CREATE", "default", "other", "", bad, nil, false},
		{"5", "PeerAuthentication", "CREATE", "default", "p", "", strictPA, nil, false},
		{"6", "DestinationRule", "DELETE", "default", "bad-rule", "", nil, bad, false},
		{"7", "DestinationRule", "CREATE", "audit", "bad-rule", "", []byte(strings.Replace(string(bad), `"default"`, `"audit"`, 1)), nil, false},
		{"8", "DestinationRule", "CREATE", "default", "bad-rule", "", mustJSON(manySubsets(10000)), nil, false},
		{"9", "DestinationRule", "CREATE", "default", "bad-rule", "", []byte(strings.Replace(string(bad), `"httpbin.default.svc.cluster.local"`, `"`+strings.Repeat("h.", 1<<19)+`"`, 1)), nil, false},
		{"10", "DestinationRule", "CREATE", "default", "bad-rule", "", []byte(`{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"name":"bad-rule","namespace":"default"},"spec":{"host":"h","exportTo":[` + strings.Repeat(`"ns",`, 200000) + `"."]}}`), nil, false},
		{"11", "DestinationRule", "UPDATE", "default", "bad-rule", "status", bad, bad, false},
		{"", "", "", "", "", "", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x"}}`), nil, true},
		{"", "", "", "", "", "", []byte("\x00garbage"), nil, true},
	}
	for _, s := range seeds {
		f.Add(s.uid, s.kind, s.op, s.ns, s.name, s.sub, s.object, s.old, s.raw)
	}
	store, err := NewStore(policy.DefaultMesh())
	if err != nil {
		f.Fatal(err)
	}
	for _, o := range []runtime.Object{
		namespace("default", map[string]string{"istio-injection": "enabled"}),
		namespace("istio-system", nil),
		namespace("audit", map[string]string{ModeLabel: "audit"}),
		namespace("off", map[string]string{ModeLabel: "off"}),
		namespace("odd", map[string]string{ModeLabel: "sometimes"}),
		service("default", "httpbin", 8000, 8080),
		service("audit", "db", 80, 0),
		sidecarPod("default", "httpbin-1", "httpbin"),
		sidecarPod("default", "sleep-1", "sleep"),
		sidecarPod("audit", "db-1", "db"),
		peerAuth("istio-system", "default", securityapi.PeerAuthentication_MutualTLS_STRICT),
		destRule("istio-system", "default", "*.local", networkingapi.ClientTLSSettings_ISTIO_MUTUAL),
	} {
		if err := store.Apply(o); err != nil {
			f.Fatal(err)
		}
	}
	store.markSynced()
	opts := DefaultOptions()
	if err := opts.Validate(); err != nil {
		f.Fatal(err)
	}
	validators := []*validator{newValidator(destinationRules, store, opts), newValidator(peerAuthentications, store, opts)}

	f.Fuzz(func(t *testing.T, uid, kind, op, ns, name, sub string, object, old []byte, raw bool) {
		body := object
		if !raw {
			if !utf8.ValidString(uid) {
				uid = fmt.Sprintf("%q", uid) // JSON would change it
			}
			req := map[string]any{
				"uid": uid, "kind": gvkOf(kind), "resource": map[string]string{"group": "networking.istio.io", "version": "v1", "resource": "destinationrules"},
				"subResource": sub, "namespace": ns, "name": name, "operation": op,
				"userInfo": map[string]any{"username": "fuzz"},
			}
			if object != nil {
				req["object"] = rawOrString(object)
			}
			if old != nil {
				req["oldObject"] = rawOrString(old)
			}
			var err error
			body, err = json.Marshal(map[string]any{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, v := range validators {
			review, err := serve(v, body, "application/json")
			if err != nil {
				t.Fatal(err)
			}
			resp := review.Response
			if !raw && string(resp.UID) != uid {
				t.Fatalf("%s: response UID %q, want %q", v.kind.path, resp.UID, uid)
			}
			if !resp.Allowed {
				if resp.Result == nil || resp.Result.Message == "" {
					t.Fatalf("%s: refused without a status message: %+v", v.kind.path, resp)
				}
				if c := resp.Result.Code; c < 400 || c >= 500 && c != http.StatusServiceUnavailable {
					t.Fatalf("%s: refused with code %d: %s", v.kind.path, c, resp.Result.Message)
				}
			}
			for _, w := range resp.Warnings {
				if len(w) >= 120 {
					t.Fatalf("%s: warning of %d characters: %s", v.kind.path, len(w), w)
				}
			}
		}
	})
}

func mustJSON(o runtime.Object) []byte {
	b, err := json.Marshal(o)
	if err != nil {
		panic(err)
	}
	return b
}

// rawOrString embeds valid JSON as it is and anything else as a JSON
// string, which the decoder must refuse as an object.
func rawOrString(b []byte) any {
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	return string(b)
}

// gvkOf is the request's kind: the two the webhook checks, in their
// versions, or kind itself in a group of its own.
func gvkOf(kind string) metav1.GroupVersionKind {
	switch kind {
	case "DestinationRule":
		return metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: kind}
	case "PeerAuthentication":
		return metav1.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: kind}
	}
	return metav1.GroupVersionKind{Group: "example.io", Version: "v1", Kind: kind}
}

var _ = admissionv1.Create
