package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtlsguard/mtlsguard/audit"
	"github.com/mtlsguard/mtlsguard/internal/webhooktest"
	"github.com/mtlsguard/mtlsguard/policy"
	"github.com/mtlsguard/mtlsguard/webhook"
)

// instance is an mtlsguard manager run in the test, identified to the API
// server by its user agent (the field manager of what it writes).
type instance struct {
	agent string
	stop  func()
}

// startInstance runs mtlsguard as startWebhook does, under user agent
// agent, on the webhook port of the webhook configuration if port is 0,
// else on port; it waits until /readyz answers.
func startInstance(t *testing.T, agent string, port int, mutate ...func(*webhook.Options)) *instance {
	t.Helper()
	o := webhooktest.Options(t, env.WebhookInstallOptions)
	if port != 0 {
		o.Port = port
	}
	o.MetricsBindAddress = "0"
	for _, m := range mutate {
		m(&o)
	}
	c := rest.CopyConfig(cfg)
	c.UserAgent = agent
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := webhook.New(ctx, c, o)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("manager %s: %v", agent, err)
				}
			case <-time.After(90 * time.Second):
				t.Errorf("manager %s did not stop", agent)
			}
		})
	}
	t.Cleanup(stop)
	eventually(t, 60*time.Second, func() error {
		select {
		case err := <-done:
			t.Fatalf("manager %s stopped: %v", agent, err)
		default:
		}
		return get("http://" + o.HealthProbeBindAddress + "/readyz")
	})
	return &instance{agent: agent, stop: stop}
}

// report reads mtlsguard's Report in a namespace; nil if there is none.
func report(t *testing.T, c *cluster, ns string) *openreportsv1alpha1.Report {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("openreports.io/v1alpha1")
	u.SetKind("Report")
	err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "mtlsguard"}, u)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	r := &openreportsv1alpha1.Report{}
	if err := json.Unmarshal(b, r); err != nil {
		t.Fatal(err)
	}
	return r
}

// resultFor returns the result of report r for a service port, if any.
func resultFor(r *openreportsv1alpha1.Report, service string) *openreportsv1alpha1.ReportResult {
	if r == nil {
		return nil
	}
	for i := range r.Results {
		if r.Results[i].Properties["service"] == service {
			return &r.Results[i]
		}
	}
	return nil
}

// waitResult waits until namespace ns's report has a result for service.
func waitResult(t *testing.T, c *cluster, ns, service string, timeout time.Duration) *openreportsv1alpha1.ReportResult {
	t.Helper()
	var res *openreportsv1alpha1.ReportResult
	eventually(t, timeout, func() error {
		if res = resultFor(report(t, c, ns), service); res == nil {
			return fmt.Errorf("no result for %s in the report of %s", service, ns)
		}
		return nil
	})
	return res
}

// waitNoResult waits until namespace ns's report has no result for service.
func waitNoResult(t *testing.T, c *cluster, ns, service string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, func() error {
		if res := resultFor(report(t, c, ns), service); res != nil {
			return fmt.Errorf("result for %s still in the report of %s: %s", service, ns, res.Description)
		}
		return nil
	})
}

func resources(r *openreportsv1alpha1.ReportResult) string {
	var out []string
	for _, s := range r.Subjects {
		out = append(out, s.Kind+" "+s.Namespace+"/"+s.Name)
	}
	return strings.Join(out, ", ")
}

func auditService(ns, name string, port, target int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: port, TargetPort: intstr.FromInt32(target)}},
		},
	}
}

func plainPod(ns, name, app string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: app}}},
	}
}

func mutualRule(ns, name, host string) *networkingv1.DestinationRule {
	dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	dr.Spec.Host = host
	dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_ISTIO_MUTUAL}}
	return dr
}

// meshApp sets up namespace ns, labelled for injection, with a Service
// web (port 80 to 8080) in front of a sidecar pod web-1, and a client pod
// sleep-1 with a sidecar.
func meshApp(t *testing.T, c *cluster, ns string) {
	t.Helper()
	c.ensureNamespace(t, ns, map[string]string{"istio-injection": "enabled"})
	c.mustCreate(t, auditService(ns, "web", 80, 8080))
	c.mustCreate(t, sidecarPod(ns, "web-1", "web"))
	c.mustCreate(t, sidecarPod(ns, "sleep-1", "sleep"))
}

func host(ns, svc string, port int) string {
	return fmt.Sprintf("%s.%s.svc.cluster.local:%d", svc, ns, port)
}

// TestAuditReportsConflictsFromBeforeItStarted: a pod without a sidecar
// joined web while its clients' rule sends ISTIO_MUTUAL, and no mtlsguard
// reported it. The first mtlsguard that writes reports finds it after its
// first sync.
func TestAuditReportsConflictsFromBeforeItStarted(t *testing.T) {
	const ns = "audit-before"
	c := newCluster(t)
	meshApp(t, c, ns)
	silent := startInstance(t, "mtlsguard-silent", 0, func(o *webhook.Options) {
		o.Audit.ReportAPI, o.Audit.LeaderElect = audit.NoReports, false
	})
	rule := mutualRule(ns, "web-mtls", "web."+ns+".svc.cluster.local")
	c.mustCreate(t, rule)
	c.mustCreate(t, plainPod(ns, "web-plain", "web"))
	time.Sleep(2 * time.Second)
	if r := report(t, c, ns); r != nil {
		t.Fatalf("a report before any mtlsguard wrote one: %+v", r)
	}
	silent.stop()

	start := time.Now()
	startInstance(t, "mtlsguard", 0)
	res := waitResult(t, c, ns, host(ns, "web", 80), 30*time.Second)
	t.Logf("reported %v after start", time.Since(start).Round(time.Millisecond))
	if res.Result != "fail" || res.Severity != "high" || res.Policy != "mtls-conflict" || res.Source != "mtlsguard" {
		t.Errorf("result %+v", res)
	}
	if got, want := resources(res), "Service "+ns+"/web, DestinationRule "+ns+"/web-mtls"; got != want {
		t.Errorf("resources %q, want %q", got, want)
	}
	wantMsg := host(ns, "web", 80) + ": server has no sidecar but the client sends Istio mTLS: set tls.mode DISABLE for this host, or inject a sidecar (server pods " + ns + "/web-plain)"
	if res.Description != wantMsg {
		t.Errorf("message %q\nwant    %q", res.Description, wantMsg)
	}
	if p := res.Properties; p["server"] != "mixed" || p["client"] != "mTLS" || p["destinationRule"] != "web-mtls/"+ns || p["endpoints"] != ns+"/web-plain" {
		t.Errorf("properties %v", p)
	}
	if s := report(t, c, ns).Summary; s.Fail != 1 {
		t.Errorf("summary %+v, want 1 fail", s)
	}
	out, _, _ := kubectl(t, "get", "reports", "-A")
	t.Logf("kubectl get reports -A:\n%s", out)
	out, _, _ = kubectl(t, "get", "report", "-n", ns, "mtlsguard", "-o", "yaml")
	t.Logf("kubectl get report -n %s mtlsguard -o yaml:\n%s", ns, out)
	// While a webhook serves: the cleanup of the rule, registered before
	// this instance started, would run after it stopped.
	if err := c.Delete(context.Background(), rule); err != nil {
		t.Fatal(err)
	}
}

// TestAuditPodWithoutSidecar: a pod without a sidecar behind a Service
// whose clients' rule sets ISTIO_MUTUAL is reported within 5 seconds, with
// an MTLSConflict event on the rule; deleting it removes the report.
func TestAuditPodWithoutSidecar(t *testing.T) {
	const ns = "audit-pod"
	c := newCluster(t)
	meshApp(t, c, ns)
	startInstance(t, "mtlsguard", 0)
	c.mustCreate(t, mutualRule(ns, "web-mtls", "web."+ns+".svc.cluster.local"))
	time.Sleep(2 * time.Second) // the audit is idle again
	if r := report(t, c, ns); r != nil {
		t.Fatalf("a report without a conflict: %+v", r)
	}

	plain := plainPod(ns, "web-plain", "web")
	c.mustCreate(t, plain)
	start := time.Now()
	res := waitResult(t, c, ns, host(ns, "web", 80), 5*time.Second)
	t.Logf("reported after %v", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(res.Description, "server has no sidecar") {
		t.Errorf("message %q", res.Description)
	}
	eventually(t, 10*time.Second, func() error { return hasEvent(c, ns, "DestinationRule", "web-mtls", audit.ReasonConflict) })

	// Nothing changes: the report is not written again.
	before := report(t, c, ns).ResourceVersion
	time.Sleep(3 * time.Second)
	if after := report(t, c, ns).ResourceVersion; after != before {
		t.Errorf("report rewritten without a change: resourceVersion %s → %s", before, after)
	}

	if err := c.Delete(context.Background(), plain); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	eventually(t, 5*time.Second, func() error {
		if r := report(t, c, ns); r != nil {
			return fmt.Errorf("report of %s still there: %d results", ns, len(r.Results))
		}
		return nil
	})
	t.Logf("report removed after %v", time.Since(start).Round(time.Millisecond))
	eventually(t, 10*time.Second, func() error { return hasEvent(c, ns, "DestinationRule", "web-mtls", audit.ReasonResolved) })
}

// hasEvent reports whether an events.k8s.io Event with reason is recorded
// on the named object.
func hasEvent(c *cluster, ns, kind, name, reason string) error {
	l := &eventsv1.EventList{}
	if err := c.List(context.Background(), l, client.InNamespace(ns)); err != nil {
		return err
	}
	var seen []string
	for _, e := range l.Items {
		if e.Regarding.Kind == kind && e.Regarding.Name == name && e.Reason == reason && e.ReportingController == "mtlsguard" {
			return nil
		}
		seen = append(seen, e.Regarding.Kind+"/"+e.Regarding.Name+" "+e.Reason)
	}
	return fmt.Errorf("no %s event on %s %s/%s; events: %q", reason, kind, ns, name, seen)
}

// TestAuditTargetPortOntoDisabledPort: the Service's targetPort moves to a
// port whose port-level PeerAuthentication is DISABLE while its clients
// send ISTIO_MUTUAL: reported; moving it back removes the result.
func TestAuditTargetPortOntoDisabledPort(t *testing.T) {
	const ns = "audit-port"
	c := newCluster(t)
	meshApp(t, c, ns)
	startInstance(t, "mtlsguard", 0)
	pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}
	pa.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "web"}}
	pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}
	pa.Spec.PortLevelMtls = map[uint32]*securityapi.PeerAuthentication_MutualTLS{9090: {Mode: securityapi.PeerAuthentication_MutualTLS_DISABLE}}
	c.mustCreate(t, pa)
	c.mustCreate(t, mutualRule(ns, "web-mtls", "web."+ns+".svc.cluster.local"))

	retarget := func(port int32) {
		t.Helper()
		svc := &corev1.Service{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "web"}, svc); err != nil {
			t.Fatal(err)
		}
		svc.Spec.Ports[0].TargetPort = intstr.FromInt32(port)
		if err := c.Update(context.Background(), svc); err != nil {
			t.Fatal(err)
		}
	}
	retarget(9090)
	res := waitResult(t, c, ns, host(ns, "web", 80), 5*time.Second)
	if p := res.Properties; p["server"] != "HTTP" || p["client"] != "mTLS" || p["authnPolicy"] != "web/"+ns {
		t.Errorf("properties %v", p)
	}
	if !strings.Contains(res.Description, "server is DISABLE but the client sends Istio mTLS") {
		t.Errorf("message %q", res.Description)
	}
	retarget(8080)
	waitNoResult(t, c, ns, host(ns, "web", 80), 5*time.Second)
}

// TestAuditAutoMTLSOff: turning enableAutoMtls off in the istio ConfigMap
// makes every client without a TLS rule send plaintext, so each auto-mTLS
// row towards a STRICT server is reported; turning it back on clears them.
func TestAuditAutoMTLSOff(t *testing.T) {
	const ns = "audit-auto"
	c := newCluster(t)
	meshApp(t, c, ns)
	c.mustCreate(t, auditService(ns, "api", 81, 8081))
	c.mustCreate(t, sidecarPod(ns, "api-1", "api"))
	c.ensureNamespace(t, "istio-system", nil)
	startInstance(t, "mtlsguard", 0)
	pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}
	pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}
	c.mustCreate(t, pa)
	time.Sleep(2 * time.Second)
	if r := report(t, c, ns); r != nil {
		t.Fatalf("a report with auto mTLS on: %+v", r.Results)
	}

	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: policy.MeshConfigMapName},
		Data:       map[string]string{"mesh": "enableAutoMtls: false\n"},
	}
	c.mustCreate(t, cm)
	var services []string
	eventually(t, 10*time.Second, func() error {
		services = nil
		r := report(t, c, ns)
		if r == nil {
			return fmt.Errorf("no report in %s", ns)
		}
		for _, res := range r.Results {
			p := res.Properties
			if p["server"] != "mTLS" || p["client"] != "HTTP" || p["destinationRule"] != "-" || p["authnPolicy"] != "default/"+ns {
				return fmt.Errorf("unexpected result %v", p)
			}
			services = append(services, p["service"])
		}
		if want := []string{host(ns, "api", 81), host(ns, "web", 80)}; !slices.Equal(services, want) {
			return fmt.Errorf("results for %q, want %q", services, want)
		}
		return nil
	})
	if err := c.Delete(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if r := report(t, c, ns); r != nil {
			return fmt.Errorf("report of %s still there: %d results", ns, len(r.Results))
		}
		return nil
	})
}

// TestAuditPolicyReports: with --report-api=wgpolicyk8s the same result
// is a wgpolicyk8s.io/v1alpha2 PolicyReport.
func TestAuditPolicyReports(t *testing.T) {
	const ns = "audit-wgpolicy"
	c := newCluster(t)
	meshApp(t, c, ns)
	startInstance(t, "mtlsguard", 0, func(o *webhook.Options) { o.Audit.ReportAPI = audit.WGPolicy })
	c.mustCreate(t, mutualRule(ns, "web-mtls", "web."+ns+".svc.cluster.local"))
	c.mustCreate(t, plainPod(ns, "web-plain", "web"))
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("wgpolicyk8s.io/v1alpha2")
	u.SetKind("PolicyReport")
	eventually(t, 10*time.Second, func() error {
		return c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "mtlsguard"}, u)
	})
	b, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	var r audit.PolicyReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Summary.Fail != 1 || len(r.Results) != 1 || r.Results[0].Properties["service"] != host(ns, "web", 80) || r.Results[0].Result != "fail" {
		t.Errorf("policy report %+v", r)
	}
	if rep := report(t, c, ns); rep != nil {
		t.Errorf("an openreports Report too: %+v", rep)
	}
}

// managers lists the field managers of an object, sorted.
func managers(obj metav1.Object) []string {
	var out []string
	for _, m := range obj.GetManagedFields() {
		out = append(out, m.Manager)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestAuditOnlyTheLeaderWrites: of two instances against one API server,
// only the one holding the Lease writes reports; when it stops, the other
// takes over.
func TestAuditOnlyTheLeaderWrites(t *testing.T) {
	const ns = "audit-leader"
	c := newCluster(t)
	meshApp(t, c, ns)
	// b starts first and takes the Lease; a serves the webhook.
	b := startInstance(t, "mtlsguard-b", freePort(t))
	eventually(t, 30*time.Second, func() error { return leaseHeld(c) })
	startInstance(t, "mtlsguard-a", 0)
	c.mustCreate(t, mutualRule(ns, "web-mtls", "web."+ns+".svc.cluster.local"))
	c.mustCreate(t, plainPod(ns, "web-plain", "web"))
	waitResult(t, c, ns, host(ns, "web", 80), 10*time.Second)
	time.Sleep(2 * time.Second)
	if got := managers(report(t, c, ns)); !slices.Equal(got, []string{"mtlsguard-b"}) {
		t.Fatalf("report written by %q, want only the leader mtlsguard-b", got)
	}

	b.stop()
	c.mustCreate(t, plainPod(ns, "web-plain-2", "web"))
	eventually(t, 30*time.Second, func() error {
		res := resultFor(report(t, c, ns), host(ns, "web", 80))
		if res == nil || res.Properties["endpoints"] != ns+"/web-plain, "+ns+"/web-plain-2" {
			return fmt.Errorf("result %+v does not list both pods yet", res)
		}
		return nil
	})
	if got := managers(report(t, c, ns)); !slices.Contains(got, "mtlsguard-a") {
		t.Errorf("report written by %q after the leader stopped, want mtlsguard-a too", got)
	}
}

// leaseHeld reports whether someone holds the audit's Lease.
func leaseHeld(c *cluster) error {
	l := &coordinationv1.Lease{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "mtlsguard-audit"}, l); err != nil {
		return err
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
		return fmt.Errorf("lease default/mtlsguard-audit is not held")
	}
	return nil
}

func freePort(t *testing.T) int {
	t.Helper()
	addr := webhooktest.FreeAddr(t)
	var port int
	if _, err := fmt.Sscanf(addr[strings.LastIndex(addr, ":")+1:], "%d", &port); err != nil {
		t.Fatal(err)
	}
	return port
}

// TestAuditSidecarWithoutTLSMode: a pod that runs a sidecar without the
// injector's tlsMode label is a warning result of its own.
func TestAuditSidecarWithoutTLSMode(t *testing.T) {
	const ns = "audit-tlsmode"
	c := newCluster(t)
	c.ensureNamespace(t, ns, nil)
	startInstance(t, "mtlsguard", 0)
	p := sidecarPod(ns, "web-1", "web")
	delete(p.Labels, policy.TLSModeLabel)
	c.mustCreate(t, p)
	var r *openreportsv1alpha1.Report
	eventually(t, 5*time.Second, func() error {
		if r = report(t, c, ns); r == nil {
			return fmt.Errorf("no report in %s", ns)
		}
		return nil
	})
	if len(r.Results) != 1 || r.Summary.Warn != 1 || r.Summary.Fail != 0 {
		t.Fatalf("report %+v", r)
	}
	res := r.Results[0]
	if res.Result != "warn" || res.Policy != "sidecar-tls-mode" || res.Properties["pod"] != ns+"/web-1" || resources(&res) != "Pod "+ns+"/web-1" ||
		!strings.Contains(res.Description, "without the label security.istio.io/tlsMode=istio") {
		t.Errorf("result %+v", res)
	}
}
