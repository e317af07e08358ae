package load

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtlsguard/mtlsguard/audit"
	mtlsscheme "github.com/mtlsguard/mtlsguard/internal/scheme"
	"github.com/mtlsguard/mtlsguard/internal/webhooktest"
	"github.com/mtlsguard/mtlsguard/policy"
)

var (
	duration = flag.Duration("duration", 10*time.Second, "how long the clients write (docs/reliability.md records a 60s run)")
	clients  = flag.Int("clients", 200, "concurrent clients")
)

const namespaces = 20

// op is a class of write the clients make.
type op string

const (
	opCreate    op = "DestinationRule create"
	opDenied    op = "DestinationRule create, denied"
	opUpdate    op = "DestinationRule update"
	opDelete    op = "DestinationRule delete"
	opPodCreate op = "Pod create"
	opPodDelete op = "Pod delete"
)

// tally collects the latency of every write by class, and the unexpected
// answers.
type tally struct {
	mu       sync.Mutex
	took     map[op][]time.Duration
	errors   []string
	warnings int
}

func (t *tally) add(o op, d time.Duration, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		if len(t.errors) < 20 {
			t.errors = append(t.errors, fmt.Sprintf("%s: %v", o, err))
		} else {
			t.errors = append(t.errors, "")
		}
		return
	}
	t.took[o] = append(t.took[o], d)
}

// HandleWarningHeader counts warnings: none is expected (no audit mode, no
// unsynced or timed-out answer).
func (t *tally) HandleWarningHeader(_ int, _ string, text string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.warnings++
	if t.warnings <= 5 {
		t.errors = append(t.errors, "warning: "+text)
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// TestSustainedLoad: -clients clients (200) write for -duration, each in
// one of 20 namespaces where a Service web is served by sidecar pods under
// a mesh-wide STRICT policy: they create, update and delete
// DestinationRules of their own (one create in five is a plaintext rule
// for web, which must be denied) and create and delete pods of web, with
// and without sidecars, which the webhook's cache and the audit follow.
// Every answer must be the expected one: 0 errors, 0 warnings. Run under
// -race, the webhook in this process is checked for data races.
func TestSustainedLoad(t *testing.T) {
	o := webhooktest.Options(t, env.WebhookInstallOptions)
	o.Audit.LeaderElect = false // the audit runs in this single replica
	o.Audit.ReportAPI = audit.NoReports
	// Under -race on a shared machine a request can wait seconds: this
	// test counts wrong answers and measures, it does not time out (the
	// webhook configuration allows 30 s).
	o.DecisionTimeout = 25 * time.Second
	webhooktest.Start(t, cfg, o)

	results := &tally{took: map[op][]time.Duration{}}
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, 0 // no client-side throttling: the load is the point
	c.WarningHandler = results
	cl, err := client.New(c, client.Options{Scheme: mtlsscheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	setupMesh(t, cl)
	waitReady(t, "http://"+o.HealthProbeBindAddress+"/readyz")
	// The cache has the mesh once the plaintext rule is denied everywhere.
	for i := range namespaces {
		deadline := time.Now().Add(60 * time.Second)
		for {
			err := cl.Create(context.Background(), plaintextRule(ns(i), "probe"), client.DryRunAll)
			if apierrors.IsForbidden(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("plaintext rule in %s: %v, want denied", ns(i), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	results.mu.Lock()
	results.warnings, results.errors = 0, nil
	results.mu.Unlock()

	stop := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for i := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			writeUntil(cl, i, stop, results)
		}()
	}
	wg.Wait()
	elapsed := *duration

	total := 0
	var lines []string
	for _, o := range []op{opCreate, opDenied, opUpdate, opDelete, opPodCreate, opPodDelete} {
		ds := results.took[o]
		total += len(ds)
		lines = append(lines, fmt.Sprintf("%-32s %7d   p50 %8v   p99 %8v", o, len(ds),
			percentile(ds, 0.50).Round(100*time.Microsecond), percentile(ds, 0.99).Round(100*time.Microsecond)))
	}
	var checked []time.Duration
	for _, o := range []op{opCreate, opDenied, opUpdate, opDelete} {
		checked = append(checked, results.took[o]...)
	}
	lines = append(lines, fmt.Sprintf("%-32s %7d   p50 %8v   p99 %8v", "all webhook-checked writes", len(checked),
		percentile(checked, 0.50).Round(100*time.Microsecond), percentile(checked, 0.99).Round(100*time.Microsecond)))
	t.Logf("%d clients for %v: %d writes (%.0f/s), %d errors, %d warnings\n%s",
		*clients, elapsed, total, float64(total)/elapsed.Seconds(), len(results.errors), results.warnings, strings.Join(lines, "\n"))
	t.Logf("the webhook's own view:\n%s", webhookLatency(t, o.MetricsBindAddress))
	if len(results.errors) > 0 || results.warnings > 0 {
		t.Errorf("%d unexpected answers, the first: %q", len(results.errors), results.errors[:min(len(results.errors), 20)])
	}
	if len(results.took[opDenied]) == 0 || len(results.took[opPodCreate]) == 0 || len(results.took[opUpdate]) == 0 ||
		len(results.took[opDelete]) == 0 || len(results.took[opPodDelete]) == 0 {
		t.Errorf("a class of writes never ran: %v", results.took)
	}
}

func ns(i int) string { return fmt.Sprintf("load-%d", i%namespaces) }

// writeUntil is one client: it cycles through the classes of writes on
// objects of its own until stop.
func writeUntil(cl client.Client, i int, stop time.Time, results *tally) {
	namespace := ns(i)
	var rules, pods []string
	// Each client starts at another class, so that every class runs even
	// when a client makes only a few writes.
	for n := i; time.Now().Before(stop); n++ {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		start := time.Now()
		var o op
		var err error
		step := n % 10
		if step == 6 && len(rules) == 0 {
			step = 0 // nothing to delete yet
		}
		if (step == 4 || step == 5) && len(rules) == 0 {
			step = 0 // nothing to update yet
		}
		if step == 9 && len(pods) == 0 {
			step = 7 // nothing to delete yet
		}
		switch {
		case step < 3:
			o = opCreate
			name := fmt.Sprintf("c%d-%d", i, n)
			if err = cl.Create(ctx, ownRule(namespace, name)); err == nil {
				rules = append(rules, name)
			}
		case step == 3:
			o = opDenied
			err = cl.Create(ctx, plaintextRule(namespace, fmt.Sprintf("c%d-%d", i, n)))
			if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "would create") {
				err = nil
			} else if err == nil {
				err = fmt.Errorf("a plaintext rule for web was admitted")
			}
		case step == 4 || step == 5:
			o = opUpdate
			dr := ownRule(namespace, rules[len(rules)-1])
			if err = cl.Get(ctx, client.ObjectKeyFromObject(dr), dr); err == nil {
				dr.Spec.TrafficPolicy.ConnectionPool = &networkingapi.ConnectionPoolSettings{
					Tcp: &networkingapi.ConnectionPoolSettings_TCPSettings{MaxConnections: int32(n)},
				}
				start = time.Now()
				err = cl.Update(ctx, dr)
			}
		case step == 6:
			o = opDelete
			err = cl.Delete(ctx, ownRule(namespace, rules[0]))
			rules = rules[1:]
		case step == 7 || step == 8:
			o = opPodCreate
			name := fmt.Sprintf("churn-%d-%d", i, n)
			if err = cl.Create(ctx, webPod(namespace, name, n%3 != 0)); err == nil {
				pods = append(pods, name)
			}
		default:
			o = opPodDelete
			err = cl.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: pods[0]}}, client.GracePeriodSeconds(0))
			pods = pods[1:]
		}
		cancel()
		results.add(o, time.Since(start), err)
	}
}

// setupMesh: mesh-wide STRICT, and in each namespace a Service web with a
// sidecar pod and a client pod with a sidecar.
func setupMesh(t *testing.T, cl client.Client) {
	t.Helper()
	ctx := context.Background()
	objs := []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}}
	strict := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "default"}}
	strict.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}
	objs = append(objs, strict)
	for i := range namespaces {
		n := ns(i)
		objs = append(objs,
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"istio-injection": "enabled"}}},
			&corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: n, Name: "web"},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
					Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
			},
			webPod(n, "web-1", true),
			clientPod(n),
		)
	}
	for _, o := range objs {
		if err := cl.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s/%s: %v", o, o.GetNamespace(), o.GetName(), err)
		}
	}
}

func sidecar(p *corev1.Pod) *corev1.Pod {
	p.Labels[policy.TLSModeLabel] = "istio"
	p.Annotations = map[string]string{policy.SidecarStatusAnnotation: `{"containers":["istio-proxy"]}`}
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: policy.ProxyContainerName, Image: "istio/proxyv2"})
	return p
}

func webPod(ns, name string, withSidecar bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web"}}},
	}
	if withSidecar {
		return sidecar(p)
	}
	return p
}

func clientPod(ns string) *corev1.Pod {
	return sidecar(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sleep-1", Labels: map[string]string{"app": "sleep"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "sleep", Image: "sleep"}}},
	})
}

// ownRule is a client's rule for a host of its own: it can never create a
// conflict, but the webhook checks it all the same.
func ownRule(ns, name string) *networkingv1.DestinationRule {
	dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	dr.Spec.Host = name + "." + ns + ".svc.cluster.local"
	dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_ISTIO_MUTUAL}}
	return dr
}

// plaintextRule sends web's clients plaintext: a conflict with STRICT.
func plaintextRule(ns, name string) *networkingv1.DestinationRule {
	dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	dr.Spec.Host = "web." + ns + ".svc.cluster.local"
	dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_DISABLE}}
	return dr
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready after 60 s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// webhookLatency reads the metrics the webhook serves on addr: the mean
// time to decide and to answer an admission request, and how many it
// answered.
func webhookLatency(t *testing.T, addr string) string {
	t.Helper()
	sums := map[string]float64{}
	for _, line := range strings.Split(webhooktest.Metrics(t, addr), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		metric, _, _ := strings.Cut(name, "{")
		switch metric {
		case "mtlsguard_decision_duration_seconds_sum", "mtlsguard_decision_duration_seconds_count",
			"controller_runtime_webhook_latency_seconds_sum", "controller_runtime_webhook_latency_seconds_count":
			v, err := strconv.ParseFloat(value, 64)
			if err == nil {
				sums[metric] += v
			}
		}
	}
	mean := func(prefix string) time.Duration {
		if sums[prefix+"_count"] == 0 {
			return 0
		}
		return time.Duration(sums[prefix+"_sum"] / sums[prefix+"_count"] * float64(time.Second)).Round(10 * time.Microsecond)
	}
	return fmt.Sprintf("%.0f decisions, mean %v; %.0f requests served, mean %v",
		sums["mtlsguard_decision_duration_seconds_count"], mean("mtlsguard_decision_duration_seconds"),
		sums["controller_runtime_webhook_latency_seconds_count"], mean("controller_runtime_webhook_latency_seconds"))
}
