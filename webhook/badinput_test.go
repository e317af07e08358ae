package webhook

import (
	"fmt"
	"strings"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/mtlsguard/mtlsguard/internal/doctable"
	"github.com/mtlsguard/mtlsguard/policy"
)

// badInputs are the cases of the rows of docs/reliability.md, "Bad input
// to the webhook": each returns the answer, rendered as the document
// writes it.
var badInputs = map[string]func(t *testing.T) string{
	"empty body":            func(t *testing.T) string { return post(t, deepDive(t), nil, "application/json") },
	"body that is not JSON": func(t *testing.T) string { return post(t, deepDive(t), []byte("{not json"), "application/json") },
	"wrong Content-Type":    func(t *testing.T) string { return post(t, deepDive(t), reviewOf(createBadRule(t)), "text/plain") },
	"AdmissionReview without request": func(t *testing.T) string {
		return post(t, deepDive(t), []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), "application/json")
	},
	"object that does not decode": func(t *testing.T) string {
		r := createBadRule(t)
		r.Object.Raw = []byte(`{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"name":"bad-rule","namespace":"default"},"spec":{"host":7}}`)
		return postRequest(t, deepDive(t), r)
	},
	"object of another kind than the request": func(t *testing.T) string {
		r := createBadRule(t)
		r.Object = request(t, admissionv1.Create, peerAuth("default", "bad-rule", securityapi.PeerAuthentication_MutualTLS_STRICT), nil).Object
		return postRequest(t, deepDive(t), r)
	},
	"CREATE without object": func(t *testing.T) string {
		r := createBadRule(t)
		r.Object.Raw = nil
		return postRequest(t, deepDive(t), r)
	},
	"unknown TLS mode (newer Istio)": func(t *testing.T) string {
		r := createBadRule(t)
		r.Object.Raw = []byte(`{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"name":"bad-rule","namespace":"default"},` +
			`"spec":{"host":"httpbin","subsets":[{"name":"v1","trafficPolicy":{"tls":{"mode":"OPTIONAL_MUTUAL"}}}]}}`)
		return postRequest(t, deepDive(t), r)
	},
	"unknown TLS mode (newer Istio), audit mode": func(t *testing.T) string {
		r := createBadRule(t)
		r.Object.Raw = []byte(`{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"name":"bad-rule","namespace":"default"},` +
			`"spec":{"host":"httpbin","trafficPolicy":{"tls":{"mode":"OPTIONAL_MUTUAL"}}}}`)
		return postRequest(t, deepDive(t), r, func(o *Options) { o.DefaultMode = Audit })
	},
	"unknown TLS mode number": func(t *testing.T) string {
		d := badRule()
		d.Spec.TrafficPolicy.Tls.Mode = 9
		return postRequest(t, deepDive(t), request(t, admissionv1.Create, d, nil))
	},
	"UPDATE without oldObject": func(t *testing.T) string {
		r := createBadRule(t)
		r.Operation = admissionv1.Update
		return postRequest(t, deepDive(t), r)
	},
	"object in another namespace than the request": func(t *testing.T) string {
		r := createBadRule(t)
		r.Namespace = "istio-system"
		return postRequest(t, deepDive(t), r)
	},
	"object named differently from the request": func(t *testing.T) string {
		r := createBadRule(t)
		r.Name = "good-rule"
		return postRequest(t, deepDive(t), r)
	},
	"oldObject named differently from the request": func(t *testing.T) string {
		old := badRule()
		old.Name = "other"
		r := request(t, admissionv1.Update, badRule(), old)
		return postRequest(t, deepDive(t), r)
	},
	"generated name (request without name)": func(t *testing.T) string {
		r := createBadRule(t)
		r.Name = ""
		return postRequest(t, deepDive(t), r)
	},
	"kind this path does not check": func(t *testing.T) string {
		r := request(t, admissionv1.Create, peerAuth("default", "p", securityapi.PeerAuthentication_MutualTLS_DISABLE), nil)
		return postRequest(t, deepDive(t), r) // to /validate/destinationrules
	},
	"subresource": func(t *testing.T) string {
		r := createBadRule(t)
		r.SubResource = "status"
		return postRequest(t, deepDive(t), r)
	},
	"operation CONNECT": func(t *testing.T) string {
		r := createBadRule(t)
		r.Operation = admissionv1.Connect
		return postRequest(t, deepDive(t), r)
	},
	"cache not synced, --unsynced=allow": func(t *testing.T) string {
		s := deepDive(t)
		s.synced.Store(false)
		return postRequest(t, s, createBadRule(t))
	},
	"cache not synced, --unsynced=deny": func(t *testing.T) string {
		s := deepDive(t)
		s.synced.Store(false)
		return postRequest(t, s, createBadRule(t), func(o *Options) { o.Unsynced = UnsyncedDeny })
	},
	"unknown mode label on the namespace": func(t *testing.T) string {
		return postRequest(t, deepDive(t, namespace("default", map[string]string{ModeLabel: "strict"})), createBadRule(t))
	},
	"deleting a rule the engine cannot read": func(t *testing.T) string {
		d := badRule()
		d.Spec.TrafficPolicy.Tls.Mode = 9
		return postRequest(t, deepDive(t), request(t, admissionv1.Delete, nil, d))
	},
	"10,000 subsets": func(t *testing.T) string {
		// A deadline of a minute: the answer must not depend on how busy
		// the machine is (it takes 0.5 s of CPU).
		return postRequest(t, deepDive(t), request(t, admissionv1.Create, manySubsets(10000), nil),
			func(o *Options) { o.DecisionTimeout = time.Minute })
	},
	"1 MB host": func(t *testing.T) string {
		d := badRule()
		d.Spec.Host = strings.Repeat("h", 1<<20)
		return postRequest(t, deepDive(t), request(t, admissionv1.Create, d, nil))
	},
	"cached rule the engine cannot read": func(t *testing.T) string {
		s := deepDive(t)
		d := destRule("default", "future", "*.local", networkingapi.ClientTLSSettings_ISTIO_MUTUAL)
		if err := s.Apply(d); err != nil {
			t.Fatal(err)
		}
		d = d.DeepCopy()
		d.Spec.TrafficPolicy.Tls.Mode = 9
		err := s.Apply(d)
		var rules []string
		groups, _ := s.state.Load().Table(policy.Query{})
		for _, g := range groups {
			rules = append(rules, g.Row.DestinationRule)
		}
		if strings.Contains(strings.Join(rules, " "), "future/default") {
			t.Errorf("the unreadable version of future is left out, and so must be its previous version: rules %v", rules)
		}
		return "Apply: " + errString(err)
	},
	"cached rule this version's types cannot decode": func(t *testing.T) string {
		s := deepDive(t)
		d := destRule("default", "future", "*.local", networkingapi.ClientTLSSettings_ISTIO_MUTUAL)
		if err := s.Apply(d); err != nil {
			t.Fatal(err)
		}
		obj, err := decodeTyped(scheme)(futureUnstructured("default", "future"))
		if err != nil {
			t.Fatal(err)
		}
		err = s.Apply(obj.(runtime.Object))
		if rules := tableRules(t, s); strings.Contains(rules, "future/default") {
			t.Errorf("the undecodable version of future is left out, and so must be its previous version: rules %v", rules)
		}
		return "Apply: " + errString(err)
	},
	"cached mesh ConfigMap with invalid YAML": func(t *testing.T) string {
		s := deepDive(t)
		err := s.Apply(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: policy.MeshConfigMapName},
			Data: map[string]string{"mesh": "enableAutoMtls: ["}})
		if m := s.state.Load().Mesh(); !m.AutoMTLS {
			t.Errorf("mesh %+v after a ConfigMap that does not parse; want the one before", m)
		}
		return "Apply: " + errString(err)
	},
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

func createBadRule(t *testing.T) admission.Request {
	return request(t, admissionv1.Create, badRule(), nil)
}

// manySubsets is bad-rule with n subsets, each with its own TLS DISABLE.
func manySubsets(n int) *networkingv1.DestinationRule {
	d := badRule()
	for i := range n {
		d.Spec.Subsets = append(d.Spec.Subsets, &networkingapi.Subset{
			Name:          fmt.Sprintf("s%d", i),
			Labels:        map[string]string{"app": "httpbin"},
			TrafficPolicy: &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_DISABLE}},
		})
	}
	return d
}

func post(t *testing.T, s *Store, body []byte, contentType string) string {
	t.Helper()
	review, err := serve(testValidator(t, destinationRules, s), body, contentType)
	if err != nil {
		t.Fatal(err)
	}
	return answer(review.Response)
}

func postRequest(t *testing.T, s *Store, req admission.Request, mutate ...func(*Options)) string {
	t.Helper()
	review, err := serve(testValidator(t, destinationRules, s, mutate...), reviewOf(req), "application/json")
	if err != nil {
		t.Fatal(err)
	}
	if review.Response.UID != req.UID {
		t.Errorf("response UID %q, want the request's %q", review.Response.UID, req.UID)
	}
	return answer(review.Response)
}

// TestBadInputGetsTheDocumentedAnswer sends every class of bad admission
// request docs/reliability.md lists, and applies every bad object the cache
// can deliver, and checks the answer the document gives; the document and
// this test list the same cases.
func TestBadInputGetsTheDocumentedAnswer(t *testing.T) {
	doctable.RunCases(t, "../docs/reliability.md", "### Bad input to the webhook", badInputs, func(t *testing.T, row doctable.Row, run func(*testing.T) string) {
		if got, want := run(t), row.Code(2); got != want {
			t.Errorf("answer\n%s\nwant (docs/reliability.md)\n%s", got, want)
		}
	})
}
