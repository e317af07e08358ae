package benche2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	networkingapi "istio.io/api/networking/v1"
	securityapi "istio.io/api/security/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// write is one timed request through the API server.
type write struct {
	arm   string
	label string // what was written, for mesh-wide writes
	start time.Time
	took  time.Duration
	err   error
	call  *call
}

func (w write) end() time.Time { return w.start.Add(w.took) }

// denied reports whether err is a webhook's denial, as the API server
// words it.
func denied(err error) bool {
	return err != nil && strings.Contains(err.Error(), "denied the request")
}

// timed runs do with a recording context and times it.
func timed(ctx context.Context, arm, label string, do func(ctx context.Context) error) write {
	ctx, c := withCall(ctx)
	w := write{arm: arm, label: label, call: c, start: time.Now()}
	w.err = do(ctx)
	w.took = time.Since(w.start)
	return w
}

// serviceRule is the i-th service-host DestinationRule: ISTIO_MUTUAL for one
// service of another namespace, written in a client namespace. The service
// is never svc-0 (a workload policy disables mTLS on its grpc port) nor the
// one its namespace's dr-0 covers (that rule leaves the grpc port to
// auto-mTLS): every client it reaches already sends ISTIO_MUTUAL through
// `*.local`, so the rule creates no conflict and both arms admit it, while
// mtlsguard still evaluates it in full.
func serviceRule(s shape, name string, i int) *networkingv1.DestinationRule {
	client := (i * 7) % s.namespaces
	server := (i*13 + 5) % s.namespaces
	var svcs []int
	for k := 1; k < servicesPerNS; k++ {
		if k != server%5 {
			svcs = append(svcs, k)
		}
	}
	dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns-%d", client), Name: name}}
	dr.Spec.Host = fmt.Sprintf("svc-%d.ns-%d.svc.cluster.local", svcs[i%len(svcs)], server)
	dr.Spec.TrafficPolicy = tlsPolicy(networkingapi.ClientTLSSettings_ISTIO_MUTUAL)
	return dr
}

// servicePair creates the i-th service rule and deletes it again.
func servicePair(ctx context.Context, istio istioclient.Interface, s shape, arm, name string, i int) (create, del write) {
	dr := serviceRule(s, name, i)
	rules := istio.NetworkingV1().DestinationRules(dr.Namespace)
	create = timed(ctx, arm, "create", func(ctx context.Context) error {
		_, err := rules.Create(ctx, dr, metav1.CreateOptions{})
		return err
	})
	if create.err != nil {
		create.err = fmt.Errorf("creating DestinationRule %s/%s: %w", dr.Namespace, dr.Name, create.err)
		return create, write{}
	}
	del = timed(ctx, arm, "delete", func(ctx context.Context) error {
		return rules.Delete(ctx, dr.Name, metav1.DeleteOptions{})
	})
	if del.err != nil {
		del.err = fmt.Errorf("deleting DestinationRule %s/%s: %w", dr.Namespace, dr.Name, del.err)
	}
	return create, del
}

// background writes service rules, creating and deleting each, until stop
// is called, which returns every write made. With rate > 0 it starts rate
// pairs a second on a fixed schedule, each in its own goroutine (an open
// loop: the same load in both arms, and a slow write delays no other);
// with rate 0, writers goroutines write pairs back to back (a closed loop,
// which saturates the API server and offers the faster arm more writes).
func background(ctx context.Context, istio istioclient.Interface, s shape, arm, tag string, writers int, rate float64) (stop func() []write) {
	done := make(chan struct{})
	var mu sync.Mutex
	var out []write
	var wg sync.WaitGroup
	pair := func(name string, i int) (ok bool) {
		c, d := servicePair(ctx, istio, s, arm, name, i)
		mu.Lock()
		defer mu.Unlock()
		out = append(out, c)
		if c.err == nil {
			out = append(out, d)
		}
		return c.err == nil || ctx.Err() == nil
	}
	if rate > 0 {
		wg.Go(func() {
			tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				wg.Go(func() { pair(fmt.Sprintf("bg-%s-%d", tag, i), i) })
			}
		})
	} else {
		for g := range writers {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-done:
						return
					default:
					}
					if !pair(fmt.Sprintf("bg-%s-%d-%d", tag, g, i), i*writers+g) {
						return
					}
				}
			})
		}
	}
	return func() []write {
		close(done)
		wg.Wait()
		return out
	}
}

// overlapping are the writes that were in flight at some point while one of
// during was.
func overlapping(ws, during []write) []write {
	return near(ws, during, func(w, d write) bool { return w.start.Before(d.end()) && w.end().After(d.start) })
}

// startedWithin are the writes that started within window after one of
// during started.
func startedWithin(ws, during []write, window time.Duration) []write {
	return near(ws, during, func(w, d write) bool { return !w.start.Before(d.start) && w.start.Before(d.start.Add(window)) })
}

// near are the writes of ws that match one of during.
func near(ws, during []write, match func(w, d write) bool) []write {
	var out []write
	for _, w := range ws {
		for _, d := range during {
			if match(w, d) {
				out = append(out, w)
				break
			}
		}
	}
	return out
}

// meshStep is one mesh-wide write, and the write that puts the cluster back
// when it was admitted.
type meshStep struct {
	label string
	// prepare reads what the write needs (not timed) and returns the write.
	prepare func(ctx context.Context) (func(ctx context.Context) error, error)
	undo    *meshStep
}

// meshSteps are the writes with the largest blast radius in the generated
// mesh: the mesh PeerAuthentication in the root namespace and the `*.local`
// DestinationRule.
func meshSteps(istio istioclient.Interface) []meshStep {
	pas := istio.SecurityV1().PeerAuthentications(rootNamespace)
	drs := istio.NetworkingV1().DestinationRules(rootNamespace)
	paMode := func(label string, mode securityapi.PeerAuthentication_MutualTLS_Mode) meshStep {
		return meshStep{label: label, prepare: func(ctx context.Context) (func(context.Context) error, error) {
			pa, err := pas.Get(ctx, "default", metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("reading PeerAuthentication %s/default: %w", rootNamespace, err)
			}
			pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: mode}
			return func(ctx context.Context) error {
				_, err := pas.Update(ctx, pa, metav1.UpdateOptions{})
				return err
			}, nil
		}}
	}
	drMode := func(label string, mode networkingapi.ClientTLSSettings_TLSmode) meshStep {
		return meshStep{label: label, prepare: func(ctx context.Context) (func(context.Context) error, error) {
			dr, err := drs.Get(ctx, "default", metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("reading DestinationRule %s/default: %w", rootNamespace, err)
			}
			dr.Spec.TrafficPolicy = tlsPolicy(mode)
			return func(ctx context.Context) error {
				_, err := drs.Update(ctx, dr, metav1.UpdateOptions{})
				return err
			}, nil
		}}
	}
	fromPermissive := paMode("restore: mesh PeerAuthentication PERMISSIVE → STRICT", securityapi.PeerAuthentication_MutualTLS_STRICT)
	fromDisable := paMode("restore: mesh PeerAuthentication DISABLE → STRICT", securityapi.PeerAuthentication_MutualTLS_STRICT)
	mutual := drMode("restore: `*.local` DestinationRule DISABLE → ISTIO_MUTUAL", networkingapi.ClientTLSSettings_ISTIO_MUTUAL)
	recreate := meshStep{label: "restore: create the `*.local` DestinationRule (ISTIO_MUTUAL)", prepare: func(context.Context) (func(context.Context) error, error) {
		return func(ctx context.Context) error {
			_, err := drs.Create(ctx, meshRule(), metav1.CreateOptions{})
			return err
		}, nil
	}}
	steps := []meshStep{
		paMode("mesh PeerAuthentication STRICT → PERMISSIVE", securityapi.PeerAuthentication_MutualTLS_PERMISSIVE),
		paMode("mesh PeerAuthentication STRICT → DISABLE", securityapi.PeerAuthentication_MutualTLS_DISABLE),
		drMode("`*.local` DestinationRule ISTIO_MUTUAL → DISABLE", networkingapi.ClientTLSSettings_DISABLE),
		{label: "delete the `*.local` DestinationRule", prepare: func(context.Context) (func(context.Context) error, error) {
			return func(ctx context.Context) error { return drs.Delete(ctx, "default", metav1.DeleteOptions{}) }, nil
		}},
	}
	steps[0].undo, steps[1].undo, steps[2].undo, steps[3].undo = &fromPermissive, &fromDisable, &mutual, &recreate
	return steps
}

// run prepares and times the step.
func (st meshStep) run(ctx context.Context, arm string) write {
	do, err := st.prepare(ctx)
	if err != nil {
		return write{arm: arm, label: st.label, start: time.Now(), err: err, call: &call{}}
	}
	return timed(ctx, arm, st.label, do)
}
