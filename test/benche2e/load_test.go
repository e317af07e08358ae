package benche2e

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1"
	securityapi "istio.io/api/security/v1"
	typeapi "istio.io/api/type/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/mtlsguard/mtlsguard/policy"
)

// Scale 1.0 is bigCluster in policy/bench_test.go, the engine benchmarks'
// cluster: the end-to-end figures and the engine's are for the same mesh.
const (
	namespacesAt1 = 2000
	servicesPerNS = 5
	podsPerSvc    = 5
	drsAt1        = 5000
	pasAt1        = 2000
	rootNamespace = "istio-system"
)

// shape is the size of the generated cluster.
type shape struct {
	namespaces, drs, pas int
}

func newShape(scale float64) shape {
	n := func(at1 int) int { return int(math.Round(float64(at1) * scale)) }
	return shape{namespaces: max(2, n(namespacesAt1)), drs: max(1, n(drsAt1)), pas: max(1, n(pasAt1))}
}

func (s shape) services() int { return s.namespaces * servicesPerNS }
func (s shape) pods() int     { return s.services() * podsPerSvc }

func (s shape) String() string {
	return fmt.Sprintf("%d namespaces, %d services, %d pods, %d DestinationRules, %d PeerAuthentications",
		s.namespaces, s.services(), s.pods(), s.drs, s.pas)
}

// objects is the generated cluster, built the way bigCluster builds it: a
// mesh STRICT policy and a `*.local` ISTIO_MUTUAL rule in istio-system; per
// namespace five services (two ports, one with a named targetPort) of five
// pods each, about 6% without a sidecar; one namespace or workload policy
// per namespace; two or three rules per namespace. Pods are created
// directly and stay Pending: the engine leaves out only Succeeded and
// Failed pods, so no status is written.
type objects struct {
	namespaces []*corev1.Namespace
	services   []*corev1.Service
	pods       []*corev1.Pod
	pas        []*securityv1.PeerAuthentication
	drs        []*networkingv1.DestinationRule
}

func generate(s shape) objects {
	var o objects
	meta := func(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
	o.namespaces = append(o.namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: rootNamespace}})
	o.pas = append(o.pas, meshPolicy())
	o.drs = append(o.drs, meshRule())
	pas, drs := 1, 1
	for n := 0; n < s.namespaces; n++ {
		ns := fmt.Sprintf("ns-%d", n)
		o.namespaces = append(o.namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"istio-injection": "enabled"}}})
		for v := 0; v < servicesPerNS; v++ {
			app := fmt.Sprintf("svc-%d", v)
			o.services = append(o.services, &corev1.Service{
				ObjectMeta: meta(ns, app),
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app}, Ports: []corev1.ServicePort{
					{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)},
					{Name: "grpc", Port: 9090, TargetPort: intstr.FromString("grpc")},
				}},
			})
			for p := 0; p < podsPerSvc; p++ {
				pod := &corev1.Pod{
					ObjectMeta: meta(ns, fmt.Sprintf("%s-%d", app, p)),
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app", Ports: []corev1.ContainerPort{
						{Name: "http", ContainerPort: 8080}, {Name: "grpc", ContainerPort: 9090},
					}}}},
				}
				pod.Labels = map[string]string{"app": app, "version": fmt.Sprintf("v%d", p%2)}
				if (n+v+p)%17 != 0 {
					pod.Labels[policy.TLSModeLabel] = "istio"
					pod.Annotations = map[string]string{policy.SidecarStatusAnnotation: "{}"}
				}
				o.pods = append(o.pods, pod)
			}
		}
		if pas < s.pas {
			pa := &securityv1.PeerAuthentication{ObjectMeta: meta(ns, "default")}
			if n%2 == 0 {
				pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_PERMISSIVE}
			} else {
				pa.Name = "svc-0"
				pa.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "svc-0"}}
				pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}
				pa.Spec.PortLevelMtls = map[uint32]*securityapi.PeerAuthentication_MutualTLS{9090: {Mode: securityapi.PeerAuthentication_MutualTLS_DISABLE}}
			}
			o.pas = append(o.pas, pa)
			pas++
		}
		for d := 0; d < 3 && drs < s.drs; d++ {
			if d == 2 && n%2 == 1 {
				break
			}
			dr := &networkingv1.DestinationRule{ObjectMeta: meta(ns, fmt.Sprintf("dr-%d", d))}
			switch d {
			case 0:
				dr.Spec.Host = fmt.Sprintf("svc-%d", n%5)
				dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{PortLevelSettings: []*networkingapi.TrafficPolicy_PortTrafficPolicy{{
					Port: &networkingapi.PortSelector{Number: 80}, Tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_ISTIO_MUTUAL},
				}}}
				dr.Spec.Subsets = []*networkingapi.Subset{{Name: "v0", Labels: map[string]string{"version": "v0"}}, {Name: "v1", Labels: map[string]string{"version": "v1"}}}
			case 1:
				dr.Spec.Host = fmt.Sprintf("svc-1.ns-%d.svc.cluster.local", (n+1)%s.namespaces)
				dr.Spec.ExportTo = []string{"."}
				dr.Spec.TrafficPolicy = tlsPolicy(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)
			case 2:
				dr.Spec.Host = fmt.Sprintf("*.%s.svc.cluster.local", ns)
				dr.Spec.TrafficPolicy = tlsPolicy(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)
			}
			o.drs = append(o.drs, dr)
			drs++
		}
	}
	return o
}

// meshPolicy is the mesh-wide STRICT PeerAuthentication.
func meshPolicy() *securityv1.PeerAuthentication {
	return &securityv1.PeerAuthentication{
		ObjectMeta: metav1.ObjectMeta{Namespace: rootNamespace, Name: "default"},
		Spec:       securityapi.PeerAuthentication{Mtls: &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}},
	}
}

// meshRule is the `*.local` ISTIO_MUTUAL DestinationRule in the root
// namespace, which reaches every service from every client namespace.
func meshRule() *networkingv1.DestinationRule {
	return &networkingv1.DestinationRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: rootNamespace, Name: "default"},
		Spec:       networkingapi.DestinationRule{Host: "*.local", TrafficPolicy: tlsPolicy(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)},
	}
}

func tlsPolicy(m networkingapi.ClientTLSSettings_TLSmode) *networkingapi.TrafficPolicy {
	return &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{Mode: m}}
}

// loadTimes is how long each kind took to create, and the whole load.
type loadTimes struct {
	kinds []string
	count []int
	took  []time.Duration
	wall  time.Duration
}

func (l *loadTimes) total() int {
	n := 0
	for _, c := range l.count {
		n += c
	}
	return n
}

// load creates the objects through the API server, kind after kind
// (namespaces first: everything else lives in one), each kind by a pool of
// workers. Services are the slow kind: kube-apiserver's ClusterIP allocator
// recounts every allocated address on each create, so their rate falls as
// they grow (about 90/s for the first few hundred, 15/s towards 10,000).
// Loading the other kinds at the same time was measured slower still, as
// they compete for the same CPU. It fails the test on the first object the
// API server refuses.
func load(ctx context.Context, t *testing.T, kube kubernetes.Interface, istio istioclient.Interface, o objects, workers int) loadTimes {
	t.Helper()
	var lt loadTimes
	phase := func(kind string, n int, create func(ctx context.Context, i int) error) {
		start := time.Now()
		if err := parallel(ctx, n, workers, create); err != nil {
			t.Fatalf("loading %s: %v", kind, err)
		}
		d := time.Since(start)
		t.Logf("loaded %d %s in %s (%.0f/s)", n, kind, d.Round(time.Millisecond), float64(n)/d.Seconds())
		lt.kinds, lt.count, lt.took = append(lt.kinds, kind), append(lt.count, n), append(lt.took, d)
	}
	create := metav1.CreateOptions{}
	start := time.Now()
	phase("namespaces", len(o.namespaces), func(ctx context.Context, i int) error {
		_, err := kube.CoreV1().Namespaces().Create(ctx, o.namespaces[i], create)
		return named(err, "Namespace", "", o.namespaces[i].Name)
	})
	phase("services", len(o.services), func(ctx context.Context, i int) error {
		s := o.services[i]
		_, err := kube.CoreV1().Services(s.Namespace).Create(ctx, s, create)
		return named(err, "Service", s.Namespace, s.Name)
	})
	phase("pods", len(o.pods), func(ctx context.Context, i int) error {
		p := o.pods[i]
		_, err := kube.CoreV1().Pods(p.Namespace).Create(ctx, p, create)
		return named(err, "Pod", p.Namespace, p.Name)
	})
	phase("PeerAuthentications", len(o.pas), func(ctx context.Context, i int) error {
		pa := o.pas[i]
		_, err := istio.SecurityV1().PeerAuthentications(pa.Namespace).Create(ctx, pa, create)
		return named(err, "PeerAuthentication", pa.Namespace, pa.Name)
	})
	phase("DestinationRules", len(o.drs), func(ctx context.Context, i int) error {
		dr := o.drs[i]
		_, err := istio.NetworkingV1().DestinationRules(dr.Namespace).Create(ctx, dr, create)
		return named(err, "DestinationRule", dr.Namespace, dr.Name)
	})
	lt.wall = time.Since(start)
	return lt
}

func named(err error, kind, ns, name string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("creating %s %s/%s: %w", kind, ns, name, err)
}

// parallel runs do(0..n-1) on a bounded pool of workers and returns the
// first error, after which the remaining items are skipped.
func parallel(ctx context.Context, n, workers int, do func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := do(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && err != context.Canceled {
		return err
	}
	return nil
}
