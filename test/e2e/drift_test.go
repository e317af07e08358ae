package e2e

import (
	"bufio"
	"bytes"
	"maps"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// TestChartMatchesManifests renders the chart with its default values, as
// release mtlsguard in mtlsguard-system, and manifests/default with
// kustomize, and compares what decides how mtlsguard runs and what it may
// do. A change to one that is not made to the other fails here.
func TestChartMatchesManifests(t *testing.T) {
	h := newHelm(t)
	chart := h.template(t)
	kust := h.kustomize(t, "manifests/default")

	t.Run("the same objects", func(t *testing.T) {
		// Only in manifests/: the namespace (Helm installs into one that
		// exists or --create-namespace makes). Only in the chart: the two
		// Secrets cert-manager fills, declared so that helm uninstall
		// deletes them.
		onlyKustomize := []string{"Namespace /mtlsguard-system"}
		onlyChart := []string{"Secret mtlsguard-system/mtlsguard-ca", "Secret mtlsguard-system/mtlsguard-serving-tls"}
		got, want := sortedKeys(chart), sortedKeys(kust)
		got = append(got, onlyKustomize...)
		want = append(want, onlyChart...)
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("chart objects (+ %q) =\n%s\nmanifests/default (+ %q) =\n%s", onlyKustomize, strings.Join(got, "\n"), onlyChart, strings.Join(want, "\n"))
		}
	})

	t.Run("webhook configuration", func(t *testing.T) {
		c := typed[admissionv1.ValidatingWebhookConfiguration](t, chart.find(t, "ValidatingWebhookConfiguration", "mtlsguard"))
		k := typed[admissionv1.ValidatingWebhookConfiguration](t, kust.find(t, "ValidatingWebhookConfiguration", "mtlsguard"))
		// Everything: names, rules, namespaceSelector, failurePolicy,
		// timeoutSeconds, sideEffects, matchPolicy, clientConfig.
		same(t, "webhooks", c.Webhooks, k.Webhooks)
		const inject = "cert-manager.io/inject-ca-from"
		same(t, inject, c.Annotations[inject], k.Annotations[inject])
	})

	t.Run("RBAC", func(t *testing.T) {
		// The cache's read-only rules, and the audit's reports, Events and
		// leader election Lease.
		for _, name := range []string{"mtlsguard", "mtlsguard-audit", "mtlsguard-disclosure"} {
			cr := typed[rbacv1.ClusterRole](t, chart.find(t, "ClusterRole", name))
			kr := typed[rbacv1.ClusterRole](t, kust.find(t, "ClusterRole", name))
			same(t, "ClusterRole "+name+" rules", cr.Rules, kr.Rules)
		}
		for _, name := range []string{"mtlsguard", "mtlsguard-leader-election"} {
			crole := typed[rbacv1.Role](t, chart.find(t, "Role", name))
			krole := typed[rbacv1.Role](t, kust.find(t, "Role", name))
			same(t, "Role "+name+" namespace", crole.Namespace, krole.Namespace)
			same(t, "Role "+name+" rules", crole.Rules, krole.Rules)
		}
		for kind, names := range map[string][]string{
			"ClusterRoleBinding": {"mtlsguard", "mtlsguard-audit", "mtlsguard-disclosure"},
			"RoleBinding":        {"mtlsguard", "mtlsguard-leader-election"},
		} {
			for _, name := range names {
				c, k := chart.find(t, kind, name), kust.find(t, kind, name)
				same(t, kind+" "+name+" namespace", c.GetNamespace(), k.GetNamespace())
				for _, field := range []string{"roleRef", "subjects"} {
					same(t, kind+" "+name+" "+field, c.Object[field], k.Object[field])
				}
			}
		}
	})

	t.Run("Deployment", func(t *testing.T) {
		c := typed[appsv1.Deployment](t, chart.find(t, "Deployment", "mtlsguard"))
		k := typed[appsv1.Deployment](t, kust.find(t, "Deployment", "mtlsguard"))
		same(t, "replicas", *c.Spec.Replicas, *k.Spec.Replicas)
		cp, kp := c.Spec.Template.Spec, k.Spec.Template.Spec
		same(t, "pod securityContext", cp.SecurityContext, kp.SecurityContext)
		same(t, "volumes", cp.Volumes, kp.Volumes)
		// The anti-affinity selects the release's pods: the chart's selector
		// labels, manifests/' name label. The rest must match.
		ca, ka := cp.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution, kp.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
		if len(ca) != 1 || len(ka) != 1 {
			t.Fatalf("anti-affinity terms: chart %d, manifests %d", len(ca), len(ka))
		}
		same(t, "anti-affinity weight", ca[0].Weight, ka[0].Weight)
		same(t, "anti-affinity topologyKey", ca[0].PodAffinityTerm.TopologyKey, ka[0].PodAffinityTerm.TopologyKey)
		for k, v := range ca[0].PodAffinityTerm.LabelSelector.MatchLabels {
			if c.Spec.Template.Labels[k] != v {
				t.Errorf("anti-affinity selects %s=%s, the pods have %v", k, v, c.Spec.Template.Labels)
			}
		}

		if len(cp.Containers) != 1 || len(kp.Containers) != 1 {
			t.Fatalf("containers: chart %d, manifests %d", len(cp.Containers), len(kp.Containers))
		}
		cc, kc := cp.Containers[0], kp.Containers[0]
		same(t, "container securityContext", cc.SecurityContext, kc.SecurityContext)
		same(t, "env", cc.Env, kc.Env) // GOMEMLIMIT from limits.memory
		same(t, "ports", cc.Ports, kc.Ports)
		same(t, "readinessProbe", cc.ReadinessProbe, kc.ReadinessProbe)
		same(t, "livenessProbe", cc.LivenessProbe, kc.LivenessProbe)
		same(t, "resources", cc.Resources, kc.Resources)
		same(t, "volumeMounts", cc.VolumeMounts, kc.VolumeMounts)
		same(t, "imagePullPolicy", cc.ImagePullPolicy, kc.ImagePullPolicy)

		// The chart spells out flags manifests/ leaves to the binary; those
		// must be the binary's own defaults, or the two install different
		// webhooks.
		defaults := flagDefaults(t, h.bin)
		for _, a := range kc.Args {
			if !slices.Contains(cc.Args, a) {
				t.Errorf("manifests/ passes %s, the chart does not (chart args %q)", a, cc.Args)
			}
		}
		for _, a := range cc.Args {
			if slices.Contains(kc.Args, a) {
				continue
			}
			name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			def, known := defaults[name]
			switch {
			case !ok || !known:
				t.Errorf("chart arg %s is no flag of mtlsguard --help", a)
			case value != def:
				t.Errorf("chart arg %s: manifests/ leaves --%s at its default %q", a, name, def)
			}
		}
	})

	t.Run("Service and PodDisruptionBudget", func(t *testing.T) {
		cs := typed[corev1.Service](t, chart.find(t, "Service", "mtlsguard"))
		ks := typed[corev1.Service](t, kust.find(t, "Service", "mtlsguard"))
		same(t, "Service ports", cs.Spec.Ports, ks.Spec.Ports)
		cb := typed[policyv1.PodDisruptionBudget](t, chart.find(t, "PodDisruptionBudget", "mtlsguard"))
		kb := typed[policyv1.PodDisruptionBudget](t, kust.find(t, "PodDisruptionBudget", "mtlsguard"))
		same(t, "minAvailable", cb.Spec.MinAvailable, kb.Spec.MinAvailable)
	})

	t.Run("NetworkPolicy", func(t *testing.T) {
		c := typed[networkingv1.NetworkPolicy](t, chart.find(t, "NetworkPolicy", "mtlsguard"))
		k := typed[networkingv1.NetworkPolicy](t, kust.find(t, "NetworkPolicy", "mtlsguard"))
		same(t, "policyTypes", c.Spec.PolicyTypes, k.Spec.PolicyTypes)
		same(t, "ingress", c.Spec.Ingress, k.Spec.Ingress)
		same(t, "egress", c.Spec.Egress, k.Spec.Egress)
		// Each selects its own Deployment's pods (the chart's selector
		// labels, manifests/' name label).
		for what, o := range map[string]objects{"chart": chart, "manifests/": kust} {
			np := typed[networkingv1.NetworkPolicy](t, o.find(t, "NetworkPolicy", "mtlsguard"))
			d := typed[appsv1.Deployment](t, o.find(t, "Deployment", "mtlsguard"))
			if !maps.Equal(np.Spec.PodSelector.MatchLabels, d.Spec.Selector.MatchLabels) || len(np.Spec.PodSelector.MatchExpressions) != 0 {
				t.Errorf("%s: NetworkPolicy selects %v, the Deployment's pods are %v", what, np.Spec.PodSelector, d.Spec.Selector.MatchLabels)
			}
			ports := map[string]bool{}
			for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
				ports[p.Name] = true
			}
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					if !ports[p.Port.String()] {
						t.Errorf("%s: NetworkPolicy admits port %s, which the container does not name", what, p.Port)
					}
				}
			}
		}
	})

	t.Run("cert-manager", func(t *testing.T) {
		for _, o := range kust {
			if o.GetKind() != "Issuer" && o.GetKind() != "Certificate" {
				continue
			}
			c := chart.find(t, o.GetKind(), o.GetName())
			same(t, key(o)+" spec", c.Object["spec"], o.Object["spec"])
		}
	})
}

// same reports a difference between the chart's and manifests/' value.
func same(t *testing.T, what string, chart, manifests any) {
	t.Helper()
	if d := cmp.Diff(manifests, chart); d != "" {
		t.Errorf("%s differ (-manifests/ +chart):\n%s", what, d)
	}
}

func sortedKeys(o objects) []string {
	k := o.keys()
	sort.Strings(k)
	return k
}

// flagDefaults reads each flag's default from `mtlsguard --help`: the binary
// is the authority on what leaving a flag out means.
func flagDefaults(t *testing.T, bin string) map[string]string {
	t.Helper()
	out, err := exec.Command(filepath.Join(bin, "mtlsguard"), "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("mtlsguard --help: %v\n%s", err, out)
	}
	// "      --cluster-domain string   DNS domain of services (default "cluster.local")"
	flagLine := regexp.MustCompile(`^\s+--([a-z0-9-]+)\b.*\(default (.*)\)$`)
	defaults := map[string]string{}
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		if m := flagLine.FindStringSubmatch(s.Text()); m != nil {
			defaults[m[1]] = strings.Trim(m[2], `"`)
		}
	}
	if len(defaults) == 0 {
		t.Fatalf("mtlsguard --help lists no flag defaults:\n%s", out)
	}
	return defaults
}
