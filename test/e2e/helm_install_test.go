package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
)

// release is the Helm release the install test creates; with the chart's
// naming its objects are called "mtlsguard", as in manifests/.
const release = "mtlsguard"

// leaderElectionLease is the Lease mtlsguard's replicas elect the auditor
// with (webhook.Run's LeaderElectionID).
const leaderElectionLease = "mtlsguard-audit"

// TestHelmInstallAndDeepDive installs the chart with bin/helm into the local
// control plane, lets the in-process cert-manager issue the certificate and
// inject the CA, runs bin/mtlsguard with the Deployment's args as the
// chart's ServiceAccount, replays the Deep-Dive, and uninstalls, checking
// that nothing of the release is left.
func TestHelmInstallAndDeepDive(t *testing.T) {
	top := t
	h := newHelm(t)
	c := startCluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	startCertManager(ctx, t, c)
	port := freePort(t)
	certDir := t.TempDir()
	helm := func(t *testing.T, args ...string) result {
		t.Helper()
		r := h.mustRun(t, append(args, "--kubeconfig", c.kubeconfig)...)
		t.Logf("$ %s\n%s%s", r.cmd, r.stdout, r.stderr)
		return r
	}

	// What the README says to do first: Istio's root namespace exists
	// wherever Istio runs (the chart's Role goes there), and the release
	// namespace enforces Pod Security "restricted".
	c.mustKubectl(t, "create", "namespace", "istio-system")
	c.mustKubectl(t, "create", "namespace", namespace)
	c.mustKubectl(t, "label", "namespace", namespace,
		"pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/warn=restricted")

	must(t, t.Run("every object the chart renders passes server-side dry-run", func(t *testing.T) {
		rendered := filepath.Join(t.TempDir(), "chart.yaml")
		r := h.mustRun(t, "template", release, chartDir, "--namespace", namespace)
		if err := os.WriteFile(rendered, []byte(r.stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		d := c.mustKubectl(t, "apply", "--dry-run=server", "-f", rendered)
		if got, want := strings.Count(d.stdout, "(server dry run)"), len(decodeObjects(t, r.cmd, r.stdout)); got != want {
			t.Errorf("%d objects passed server-side dry-run, want %d", got, want)
		}
		if d.stderr != "" {
			t.Errorf("want no warnings (Pod Security is enforced and warned on), got:\n%s", d.stderr)
		}
	}))

	must(t, t.Run("helm install", func(t *testing.T) {
		helm(t, "install", release, chartDir, "--namespace", namespace)
		if r := helm(t, "status", release, "--namespace", namespace); !strings.Contains(r.stdout, "STATUS: deployed") {
			t.Errorf("%s: not deployed", r.cmd)
		}
	}))

	must(t, t.Run("helm upgrade keeps what cert-manager wrote", func(t *testing.T) {
		var crt []byte
		eventually(t, "cert-manager to fill Secret "+servingSecret, func() bool {
			s, err := c.client.CoreV1().Secrets(namespace).Get(ctx, servingSecret, metav1.GetOptions{})
			if err == nil {
				crt = s.Data["tls.crt"]
			}
			return len(crt) > 0 && len(caBundles(ctx, t, c)) == webhookCount
		})
		helm(t, "upgrade", release, chartDir, "--namespace", namespace, "--reuse-values", "--set", "webhook.failurePolicy=Fail")
		if r := helm(t, "status", release, "--namespace", namespace); !strings.Contains(r.stdout, "REVISION: 2") {
			t.Errorf("%s: want revision 2", r.cmd)
		}
		s, err := c.client.CoreV1().Secrets(namespace).Get(ctx, servingSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(s.Data["tls.crt"], crt) || len(s.Data["tls.key"]) == 0 {
			t.Errorf("Secret %s lost or changed its certificate in the upgrade", servingSecret)
		}
		if s.Labels["app.kubernetes.io/managed-by"] != "Helm" {
			t.Errorf("Secret %s labels %v: no longer the release's", servingSecret, s.Labels)
		}
		// Read at once: the upgrade must not have taken the injected CA away,
		// not merely have the injector put it back.
		if n := len(caBundles(ctx, t, c)); n != webhookCount {
			t.Errorf("%d webhooks kept their caBundle through the upgrade, want %d", n, webhookCount)
		}
		vwc, err := c.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, webhookConfig, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range vwc.Webhooks {
			if *w.FailurePolicy != admissionv1.Fail {
				t.Errorf("webhook %s failurePolicy %s after the upgrade, want Fail", w.Name, *w.FailurePolicy)
			}
		}
	}))

	must(t, t.Run("point the webhook and its certificate at the local process", func(t *testing.T) {
		// This control plane runs no pods and routes no Service: the API
		// server calls bin/mtlsguard on 127.0.0.1 instead, with a serving
		// certificate also valid for that address. The "test" ops fail the
		// patch if the webhooks are ever reordered.
		var ops []string
		for i, w := range []string{"destinationrules", "peerauthentications", "serviceentries", "workloadentries", "sidecars"} {
			ops = append(ops,
				fmt.Sprintf(`{"op":"test","path":"/webhooks/%d/name","value":"%s.mtlsguard.io"}`, i, w),
				fmt.Sprintf(`{"op":"remove","path":"/webhooks/%d/clientConfig/service"}`, i),
				fmt.Sprintf(`{"op":"add","path":"/webhooks/%d/clientConfig/url","value":"https://127.0.0.1:%d/validate/%s"}`, i, port, w))
		}
		c.mustKubectl(t, "patch", "validatingwebhookconfiguration", webhookConfig, "--type=json", "-p", "["+strings.Join(ops, ",")+"]")
		c.mustKubectl(t, "patch", "certificate", "mtlsguard-serving", "-n", namespace, "--type=json",
			"-p", `[{"op":"add","path":"/spec/ipAddresses","value":["127.0.0.1"]}]`)
	}))

	must(t, t.Run("cert-manager issues the serving certificate and injects the CA", func(t *testing.T) {
		// cert-manager may have issued a certificate before the patch; wait
		// for the one with the address.
		eventually(t, "a serving certificate for 127.0.0.1", func() bool {
			s, err := c.client.CoreV1().Secrets(namespace).Get(ctx, servingSecret, metav1.GetOptions{})
			if err != nil {
				return false
			}
			block, _ := pem.Decode(s.Data["tls.crt"])
			if block == nil {
				return false
			}
			leaf, err := x509.ParseCertificate(block.Bytes)
			return err == nil && slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) })
		})
		waitForCertificate(ctx, t, c, certDir)
	}))

	must(t, t.Run("the webhook syncs every informer with the chart's args, as its ServiceAccount", func(t *testing.T) {
		d, err := c.client.AppsV1().Deployments(namespace).Get(ctx, release, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sa, args := podSpec(t, d)
		kc := c.impersonatingKubeconfig(top, namespace, sa)
		w := c.startWebhook(top, "mtlsguard-helm", certDir, kc, port, args...)
		t.Logf("ready after %s", w.waitReady(t, 90*time.Second).Round(time.Millisecond))
	}))

	must(t, t.Run("Deep-Dive", func(t *testing.T) { deepDive(t, c) }))

	t.Run("the chart's ServiceAccount may do nothing more", func(t *testing.T) {
		mayDoNothingMore(ctx, t, c, serviceAccount)
		holdsLease(ctx, t, c)
	})

	t.Run("helm uninstall leaves nothing behind", func(t *testing.T) {
		// The search must see the release before it can vouch for its
		// absence: every object of the manifest, and Helm's record of
		// each revision.
		manifest := helm(t, "get", "manifest", release, "--namespace", namespace)
		before, _, _ := releaseLeftovers(ctx, t, c)
		want := append(decodeObjects(t, manifest.cmd, manifest.stdout).keys(),
			"Secret "+namespace+"/sh.helm.release.v1."+release+".v1", "Secret "+namespace+"/sh.helm.release.v1."+release+".v2")
		for _, k := range want {
			if !slices.Contains(before, k) {
				t.Errorf("before helm uninstall, the search does not find %s among:\n%s", k, strings.Join(before, "\n"))
			}
		}

		helm(t, "uninstall", release, "--namespace", namespace, "--wait", "--timeout", "1m")
		left, collectable, written := releaseLeftovers(ctx, t, c)
		if len(left) > 0 {
			t.Errorf("left after helm uninstall:\n%s", strings.Join(left, "\n"))
		}
		// The leader election Lease is mtlsguard's, not the chart's: the
		// webhook process, still running here, renews (and would recreate)
		// it. In a cluster it outlives the uninstall too, holderless.
		if len(written) > 0 {
			t.Logf("written by the running mtlsguard, not the chart:\n%s", strings.Join(written, "\n"))
		}
		// No kube-controller-manager runs here, so no garbage collector:
		// objects whose every owner is gone (the CertificateRequests of the
		// deleted Certificates) wait for one, as in a real cluster they would
		// not.
		if len(collectable) > 0 {
			t.Logf("left to the garbage collector (every owner deleted):\n%s", strings.Join(collectable, "\n"))
		}
	})
}

// caBundles are the non-empty caBundles of the webhook configuration.
func caBundles(ctx context.Context, t *testing.T, c *cluster) [][]byte {
	t.Helper()
	vwc, err := c.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, webhookConfig, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, w := range vwc.Webhooks {
		if len(w.ClientConfig.CABundle) > 0 {
			out = append(out, w.ClientConfig.CABundle)
		}
	}
	return out
}

// podSpec is the ServiceAccount and the webhook container's args of the
// installed Deployment.
func podSpec(t *testing.T, d *appsv1.Deployment) (serviceAccount string, args []string) {
	t.Helper()
	p := d.Spec.Template.Spec
	if p.ServiceAccountName == "" || len(p.Containers) != 1 {
		t.Fatalf("Deployment %s: serviceAccountName %q, %d containers", d.Name, p.ServiceAccountName, len(p.Containers))
	}
	return p.ServiceAccountName, p.Containers[0].Args
}

// releaseLeftovers lists every object of every listable resource in the
// cluster and returns those that belong to the release: labelled or
// annotated with it by Helm, named after it, or in its namespace (apart from
// the namespace itself, which the test created, and Events, which are
// records rather than objects of the release). Objects whose owners are all
// gone are returned apart, as collectable, and the leader election Lease
// mtlsguard itself writes as written.
func releaseLeftovers(ctx context.Context, t *testing.T, c *cluster) (left, collectable, written []string) {
	t.Helper()
	resources, err := discovery.NewDiscoveryClientForConfigOrDie(c.cfg).ServerPreferredResources()
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	dyn := dynamic.NewForConfigOrDie(c.cfg)
	var all []unstructured.Unstructured
	uids := map[types.UID]bool{}
	for _, list := range resources {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range list.APIResources {
			if !slices.Contains(r.Verbs, "list") || r.Kind == "Event" {
				continue
			}
			items, err := dyn.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatalf("listing %s: %v", r.Name, err)
			}
			for _, u := range items.Items {
				uids[u.GetUID()] = true
				if u.GetKind() == "" {
					u.SetKind(r.Kind)
				}
				all = append(all, u)
			}
		}
	}
	for _, u := range all {
		if !ofRelease(&u) {
			continue
		}
		what := key(&u)
		if u.GetKind() == "Lease" && u.GetName() == leaderElectionLease {
			written = append(written, what)
			continue
		}
		owners := u.GetOwnerReferences()
		if len(owners) > 0 && !slices.ContainsFunc(owners, func(o metav1.OwnerReference) bool { return uids[o.UID] }) {
			collectable = append(collectable, fmt.Sprintf("%s (owned by %s)", what, ownerNames(owners)))
			continue
		}
		left = append(left, what)
	}
	sort.Strings(left)
	sort.Strings(collectable)
	sort.Strings(written)
	return left, collectable, written
}

func ofRelease(u *unstructured.Unstructured) bool {
	if u.GetKind() == "Namespace" && u.GetName() == namespace {
		return false
	}
	l, a := u.GetLabels(), u.GetAnnotations()
	return u.GetNamespace() == namespace ||
		strings.HasPrefix(u.GetName(), release) ||
		l["app.kubernetes.io/instance"] == release ||
		a["meta.helm.sh/release-name"] == release ||
		(l["owner"] == "helm" && l["name"] == release) // Helm's release records
}

func ownerNames(owners []metav1.OwnerReference) string {
	var s []string
	for _, o := range owners {
		s = append(s, o.Kind+" "+o.Name)
	}
	b, _ := json.Marshal(s)
	return string(b)
}
