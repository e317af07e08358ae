package e2e

import (
	"encoding/base64"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func TestChartLintStrict(t *testing.T) {
	h := newHelm(t)
	for name, args := range map[string][]string{
		"default values": nil,
		"without cert-manager": {"--set", "certManager.enabled=false", "--set", "tls.existingSecret=my-tls",
			"--set", "tls.caBundle=" + base64.StdEncoding.EncodeToString([]byte("PEM"))},
	} {
		t.Run(name, func(t *testing.T) {
			r := h.mustRun(t, append([]string{"lint", "--strict", chartDir}, args...)...)
			if !strings.Contains(r.stdout, "1 chart(s) linted, 0 chart(s) failed") {
				t.Errorf("%s:\n%s%s", r.cmd, r.stdout, r.stderr)
			}
		})
	}
}

// certManagerKinds are what the chart adds for cert-manager: the two Issuers,
// the two Certificates and the two Secrets cert-manager fills.
var certManagerKinds = []string{"Issuer", "Certificate", "Secret"}

func TestChartTemplate(t *testing.T) {
	h := newHelm(t)
	appVersion := chartAppVersion(t, h.root)
	caBundle := base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\n...\n"))

	scenarios := map[string]struct {
		args  []string
		check func(t *testing.T, o objects)
	}{
		"default: cert-manager issues the certificate and injects the CA": {
			check: func(t *testing.T, o objects) {
				want := map[string]int{
					"ServiceAccount": 1, "ClusterRole": 3, "ClusterRoleBinding": 3, "Role": 2, "RoleBinding": 2,
					"Service": 1, "Deployment": 1, "PodDisruptionBudget": 1, "ValidatingWebhookConfiguration": 1,
					"NetworkPolicy": 1,
					"Issuer":        2, "Certificate": 2, "Secret": 2,
				}
				if got := o.kinds(); !maps.Equal(got, want) {
					t.Errorf("kinds = %v, want %v", got, want)
				}
				vwc := typed[admissionv1.ValidatingWebhookConfiguration](t, o.find(t, "ValidatingWebhookConfiguration", "mtlsguard"))
				if got := vwc.Annotations["cert-manager.io/inject-ca-from"]; got != namespace+"/mtlsguard-serving" {
					t.Errorf("inject-ca-from = %q", got)
				}
				for _, w := range vwc.Webhooks {
					if len(w.ClientConfig.CABundle) != 0 {
						t.Errorf("webhook %s has a caBundle; cert-manager injects it", w.Name)
					}
				}
				checkWebhooks(t, vwc, admissionv1.Ignore, "kube-system", namespace)
				serving := o.find(t, "Certificate", "mtlsguard-serving")
				secret, _, _ := unstructured.NestedString(serving.Object, "spec", "secretName")
				if got := servingSecretOf(t, o); got != secret {
					t.Errorf("the Deployment mounts Secret %q, the Certificate fills %q", got, secret)
				}
				o.find(t, "Secret", secret)
				o.find(t, "Secret", "mtlsguard-ca")
				dns, _, _ := unstructured.NestedStringSlice(serving.Object, "spec", "dnsNames")
				if want := []string{"mtlsguard.mtlsguard-system.svc", "mtlsguard.mtlsguard-system.svc.cluster.local"}; !slices.Equal(dns, want) {
					t.Errorf("dnsNames = %q, want %q", dns, want)
				}
				d := deployment(t, o)
				if *d.Spec.Replicas != 2 || d.Spec.Template.Spec.Affinity.PodAntiAffinity == nil {
					t.Errorf("want 2 replicas spread by anti-affinity, got %d, %+v", *d.Spec.Replicas, d.Spec.Template.Spec.Affinity)
				}
				if got, want := d.Spec.Template.Spec.Containers[0].Image, "mtlsguard:"+appVersion; got != want {
					t.Errorf("image = %q, want %q", got, want)
				}
				wantArgs(t, d, "--default-mode=enforce", "--unsynced=allow", "--metrics-bind-address=:8080", "--root-namespace=istio-system",
					"--decision-timeout=2s", "--on-timeout=allow", "--report-api=auto", "--leader-elect=true", "--disclose=permitted")
				if got := networkPolicyPorts(t, o); !slices.Equal(got, []string{"webhook", "metrics"}) {
					t.Errorf("NetworkPolicy admits ports %q, want webhook and metrics", got)
				}
				if got := goMemLimit(t, d); got == nil || got.Resource != "limits.memory" {
					t.Errorf("GOMEMLIMIT from %+v, want limits.memory", got)
				}
				if got := reportRules(t, o, "mtlsguard-audit"); !slices.Equal(got, []string{"reports.openreports.io"}) {
					t.Errorf("the audit may write %q, want reports.openreports.io", got)
				}
				if ns := o.find(t, "Role", "mtlsguard-leader-election").GetNamespace(); ns != namespace {
					t.Errorf("leader election Role in %q, want the release namespace %s", ns, namespace)
				}
				role := o.find(t, "Role", "mtlsguard")
				if role.GetNamespace() != "istio-system" {
					t.Errorf("Role in %q, want istio-system", role.GetNamespace())
				}
				if got := servicePorts(t, o); !slices.Equal(got, []string{"webhook", "metrics"}) {
					t.Errorf("Service ports = %q", got)
				}
			},
		},
		"cert-manager off: an existing Secret and caBundle": {
			args: []string{"--set", "certManager.enabled=false", "--set", "tls.existingSecret=my-tls", "--set", "tls.caBundle=" + caBundle},
			check: func(t *testing.T, o objects) {
				kinds := o.kinds()
				for _, k := range certManagerKinds {
					if kinds[k] != 0 {
						t.Errorf("%d %s objects, want none without cert-manager", kinds[k], k)
					}
				}
				vwc := typed[admissionv1.ValidatingWebhookConfiguration](t, o.find(t, "ValidatingWebhookConfiguration", "mtlsguard"))
				if _, ok := vwc.Annotations["cert-manager.io/inject-ca-from"]; ok {
					t.Error("inject-ca-from annotation without cert-manager")
				}
				for _, w := range vwc.Webhooks {
					if got := base64.StdEncoding.EncodeToString(w.ClientConfig.CABundle); got != caBundle {
						t.Errorf("webhook %s caBundle = %q, want %q", w.Name, got, caBundle)
					}
				}
				if got := servingSecretOf(t, o); got != "my-tls" {
					t.Errorf("the Deployment mounts Secret %q, want my-tls", got)
				}
			},
		},
		"audit mode": {
			args: []string{"--set", "config.defaultMode=audit"},
			check: func(t *testing.T, o objects) {
				d := deployment(t, o)
				wantArgs(t, d, "--default-mode=audit")
				if slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--default-mode=enforce") {
					t.Error("both modes in the args")
				}
			},
		},
		"failurePolicy Fail on both webhooks": {
			args: []string{"--set", "webhook.failurePolicy=Fail", "--set", "webhook.timeoutSeconds=5"},
			check: func(t *testing.T, o objects) {
				vwc := typed[admissionv1.ValidatingWebhookConfiguration](t, o.find(t, "ValidatingWebhookConfiguration", "mtlsguard"))
				checkWebhooks(t, vwc, admissionv1.Fail, "kube-system", namespace)
				for _, w := range vwc.Webhooks {
					if *w.TimeoutSeconds != 5 {
						t.Errorf("webhook %s timeoutSeconds = %d, want 5", w.Name, *w.TimeoutSeconds)
					}
				}
			},
		},
		"another release and namespace, more exclusions, another root namespace": {
			args: []string{"--namespace", "guard", "--set", "fullnameOverride=guard", "--set", "webhook.excludeNamespaces={istio-system,ci}",
				"--set", "config.rootNamespace=istio-config", "--set", "config.clusterDomain=example.internal", "--set", "config.autoMtls=false", "--set", "config.unsynced=deny"},
			check: func(t *testing.T, o objects) {
				vwc := typed[admissionv1.ValidatingWebhookConfiguration](t, o.find(t, "ValidatingWebhookConfiguration", "guard"))
				checkWebhooks(t, vwc, admissionv1.Ignore, "kube-system", "guard", "istio-system", "ci")
				for _, w := range vwc.Webhooks {
					if s := w.ClientConfig.Service; s.Name != "guard" || s.Namespace != "guard" {
						t.Errorf("webhook %s calls %s/%s, want guard/guard", w.Name, s.Namespace, s.Name)
					}
				}
				if got := vwc.Annotations["cert-manager.io/inject-ca-from"]; got != "guard/guard-serving" {
					t.Errorf("inject-ca-from = %q", got)
				}
				for _, kind := range []string{"Role", "RoleBinding"} {
					if ns := o.find(t, kind, "guard").GetNamespace(); ns != "istio-config" {
						t.Errorf("%s in %q, want the root namespace istio-config", kind, ns)
					}
					// The Lease lives where mtlsguard runs.
					if ns := o.find(t, kind, "guard-leader-election").GetNamespace(); ns != "guard" {
						t.Errorf("%s guard-leader-election in %q, want the release namespace guard", kind, ns)
					}
				}
				for _, name := range []string{"guard", "guard-audit"} {
					crb := typed[rbacv1.ClusterRoleBinding](t, o.find(t, "ClusterRoleBinding", name))
					if s := crb.Subjects[0]; s.Name != "guard" || s.Namespace != "guard" {
						t.Errorf("ClusterRoleBinding %s subject %s/%s", name, s.Namespace, s.Name)
					}
				}
				dns, _, _ := unstructured.NestedStringSlice(o.find(t, "Certificate", "guard-serving").Object, "spec", "dnsNames")
				if !slices.Contains(dns, "guard.guard.svc.example.internal") {
					t.Errorf("dnsNames = %q, want guard.guard.svc.example.internal", dns)
				}
				wantArgs(t, deployment(t, o), "--root-namespace=istio-config", "--cluster-domain=example.internal", "--auto-mtls=false", "--unsynced=deny")
			},
		},
		"image digest, pull secrets, scheduling and extra args": {
			args: []string{
				"--set", "image.repository=registry.test/mtlsguard", "--set", "image.tag=v9", "--set", "image.digest=sha256:" + strings.Repeat("ab", 32),
				"--set", "imagePullSecrets={pull}", "--set", "priorityClassName=system-cluster-critical",
				"--set", "nodeSelector.pool=infra", "--set", "tolerations[0].key=infra", "--set", "tolerations[0].operator=Exists",
				"--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=pool",
				"--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
				"--set", "extraArgs={--zap-log-level=debug}", "--set", "replicaCount=3",
			},
			check: func(t *testing.T, o objects) {
				d := deployment(t, o)
				p := d.Spec.Template.Spec
				if got, want := p.Containers[0].Image, "registry.test/mtlsguard@sha256:"+strings.Repeat("ab", 32); got != want {
					t.Errorf("image = %q, want %q", got, want)
				}
				if len(p.ImagePullSecrets) != 1 || p.ImagePullSecrets[0].Name != "pull" {
					t.Errorf("imagePullSecrets = %v", p.ImagePullSecrets)
				}
				if p.PriorityClassName != "system-cluster-critical" || p.NodeSelector["pool"] != "infra" ||
					len(p.Tolerations) != 1 || p.Tolerations[0].Key != "infra" {
					t.Errorf("scheduling: priorityClassName %q, nodeSelector %v, tolerations %v", p.PriorityClassName, p.NodeSelector, p.Tolerations)
				}
				if p.Affinity.NodeAffinity == nil || p.Affinity.PodAntiAffinity != nil {
					t.Errorf("affinity = %+v, want the given node affinity instead of the default", p.Affinity)
				}
				if *d.Spec.Replicas != 3 {
					t.Errorf("replicas = %d", *d.Spec.Replicas)
				}
				wantArgs(t, d, "--zap-log-level=debug")
			},
		},
		"decision deadline, PolicyReports, no leader election": {
			args: []string{"--set", "config.decisionTimeout=4500ms", "--set", "webhook.timeoutSeconds=5", "--set", "config.onTimeout=deny",
				"--set", "config.reportAPI=wgpolicyk8s", "--set", "config.leaderElect=false"},
			check: func(t *testing.T, o objects) {
				d := deployment(t, o)
				wantArgs(t, d, "--decision-timeout=4500ms", "--on-timeout=deny", "--report-api=wgpolicyk8s", "--leader-elect=false")
				if got := reportRules(t, o, "mtlsguard-audit"); !slices.Equal(got, []string{"policyreports.wgpolicyk8s.io"}) {
					t.Errorf("the audit may write %q, want policyreports.wgpolicyk8s.io only", got)
				}
				// Without leader election no Lease: only the Role for the
				// mesh ConfigMap is left.
				if n := o.kinds()["Role"]; n != 1 {
					t.Errorf("%d Roles, want only the one for the mesh ConfigMap", n)
				}
				if n := o.kinds()["RoleBinding"]; n != 1 {
					t.Errorf("%d RoleBindings, want only the one for the mesh ConfigMap", n)
				}
			},
		},
		"no reports, no memory limit": {
			args: []string{"--set", "config.reportAPI=none", "--set", "resources.limits=null"},
			check: func(t *testing.T, o objects) {
				d := deployment(t, o)
				wantArgs(t, d, "--report-api=none")
				if got := reportRules(t, o, "mtlsguard-audit"); len(got) != 0 {
					t.Errorf("the audit may write %q, want no reports", got)
				}
				// Events stay.
				cr := typed[rbacv1.ClusterRole](t, o.find(t, "ClusterRole", "mtlsguard-audit"))
				if len(cr.Rules) != 1 || !slices.Equal(cr.Rules[0].Resources, []string{"events"}) {
					t.Errorf("audit rules = %+v, want the events rule alone", cr.Rules)
				}
				if got := goMemLimit(t, d); got != nil {
					t.Errorf("GOMEMLIMIT from %+v without a memory limit", got)
				}
			},
		},
		"metrics off": {
			args: []string{"--set", "metrics.enabled=false", "--set", "metrics.serviceMonitor.enabled=true"},
			check: func(t *testing.T, o objects) {
				if n := o.kinds()["ServiceMonitor"]; n != 0 {
					t.Errorf("%d ServiceMonitors without metrics", n)
				}
				d := deployment(t, o)
				wantArgs(t, d, "--metrics-bind-address=0")
				for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
					if p.Name == "metrics" {
						t.Error("container port metrics without metrics")
					}
				}
				if got := servicePorts(t, o); !slices.Equal(got, []string{"webhook"}) {
					t.Errorf("Service ports = %q, want webhook only", got)
				}
				if got := networkPolicyPorts(t, o); !slices.Equal(got, []string{"webhook"}) {
					t.Errorf("NetworkPolicy admits ports %q, want webhook only", got)
				}
			},
		},
		"ServiceMonitor": {
			args: []string{"--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.labels.release=prom", "--set", "metrics.port=9090"},
			check: func(t *testing.T, o objects) {
				sm := o.find(t, "ServiceMonitor", "mtlsguard")
				if sm.GetLabels()["release"] != "prom" {
					t.Errorf("ServiceMonitor labels = %v", sm.GetLabels())
				}
				eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
				if len(eps) != 1 || eps[0].(map[string]any)["port"] != "metrics" {
					t.Errorf("ServiceMonitor endpoints = %v, want the metrics port", eps)
				}
				selector, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
				svc := o.find(t, "Service", "mtlsguard")
				for k, v := range selector {
					if svc.GetLabels()[k] != v {
						t.Errorf("ServiceMonitor selects %s=%s, the Service has %v", k, v, svc.GetLabels())
					}
				}
				wantArgs(t, deployment(t, o), "--metrics-bind-address=:9090")
			},
		},
	}
	for name, s := range scenarios {
		t.Run(name, func(t *testing.T) {
			o := h.template(t, s.args...)
			s.check(t, o)
			// Whatever the values, every object stays in the release
			// namespace, except the cluster-scoped ones and the Role and
			// RoleBinding in Istio's root namespace.
			ns := namespace
			if i := slices.Index(s.args, "--namespace"); i >= 0 {
				ns = s.args[i+1]
			}
			for _, u := range o {
				switch u.GetKind() {
				case "ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration":
					if u.GetNamespace() != "" {
						t.Errorf("%s: cluster-scoped object with a namespace", key(u))
					}
				case "Role", "RoleBinding":
				default:
					if u.GetNamespace() != ns {
						t.Errorf("%s: want namespace %s", key(u), ns)
					}
				}
			}
		})
	}
}

func TestChartRequiresTheCertificateWithoutCertManager(t *testing.T) {
	h := newHelm(t)
	for name, s := range map[string]struct {
		args []string
		want string
	}{
		"no Secret": {[]string{"--set", "certManager.enabled=false", "--set", "tls.caBundle=Zm9v"}, "existingSecret"},
		"no CA":     {[]string{"--set", "certManager.enabled=false", "--set", "tls.existingSecret=my-tls"}, "caBundle"},
	} {
		t.Run(name, func(t *testing.T) {
			r := h.run(t, append([]string{"template", "mtlsguard", chartDir}, s.args...)...)
			if r.code == 0 || !strings.Contains(r.stderr, s.want) {
				t.Errorf("%s: exit %d, stderr:\n%s\nwant an error naming %s", r.cmd, r.code, r.stderr, s.want)
			}
		})
	}
}

func TestChartRefusesADecisionDeadlinePastTheWebhookTimeout(t *testing.T) {
	h := newHelm(t)
	for name, s := range map[string]struct {
		args []string
		want string
	}{
		"equal to timeoutSeconds": {[]string{"--set", "config.decisionTimeout=3s"}, "below webhook.timeoutSeconds"},
		"past timeoutSeconds":     {[]string{"--set", "config.decisionTimeout=1500ms", "--set", "webhook.timeoutSeconds=1"}, "below webhook.timeoutSeconds"},
		"zero":                    {[]string{"--set", "config.decisionTimeout=0s"}, "above zero"},
	} {
		t.Run(name, func(t *testing.T) {
			r := h.run(t, append([]string{"template", "mtlsguard", chartDir}, s.args...)...)
			if r.code == 0 || !strings.Contains(r.stderr, "config.decisionTimeout") || !strings.Contains(r.stderr, s.want) {
				t.Errorf("%s: exit %d, stderr:\n%s\nwant an error naming config.decisionTimeout and %q", r.cmd, r.code, r.stderr, s.want)
			}
		})
	}
}

func TestChartSchemaRejectsBadValues(t *testing.T) {
	h := newHelm(t)
	for name, s := range map[string]struct {
		set  string
		want string // in helm's error
	}{
		"misspelt top-level key":          {"replicas=3", "replicas"},
		"misspelt nested key":             {"config.defaultmode=audit", "defaultmode"},
		"misspelt section":                {"certManger.enabled=false", "certManger"},
		"mode off is only a label":        {"config.defaultMode=off", "defaultMode"},
		"failurePolicy is case-sensitive": {"webhook.failurePolicy=fail", "failurePolicy"},
		"timeout above the API's 30s":     {"webhook.timeoutSeconds=31", "timeoutSeconds"},
		"digest without algorithm":        {"image.digest=abc", "digest"},
		"extra arg without dashes":        {"extraArgs={zap-log-level=debug}", "extraArgs"},
		"decision timeout without unit":   {"config.decisionTimeout=2", "decisionTimeout"},
		"decision timeout in minutes":     {"config.decisionTimeout=1m", "decisionTimeout"},
		"unknown answer on timeout":       {"config.onTimeout=block", "onTimeout"},
		"unknown report API":              {"config.reportAPI=policyreports", "reportAPI"},
		"leaderElect not a boolean":       {"config.leaderElect=yes", "leaderElect"},
	} {
		t.Run(name, func(t *testing.T) {
			r := h.run(t, "template", "mtlsguard", chartDir, "--set", s.set)
			if r.code == 0 {
				t.Fatalf("%s: exit 0, want the schema to reject it", r.cmd)
			}
			if !strings.Contains(r.stderr, "values don't meet the specifications of the schema") || !strings.Contains(r.stderr, s.want) {
				t.Errorf("%s: stderr does not name the schema and %q:\n%s", r.cmd, s.want, r.stderr)
			}
		})
	}
}

// checkWebhooks checks what both webhooks must always have.
func checkWebhooks(t *testing.T, vwc *admissionv1.ValidatingWebhookConfiguration, policy admissionv1.FailurePolicyType, excluded ...string) {
	t.Helper()
	var names []string
	for _, w := range vwc.Webhooks {
		names = append(names, w.Name)
		if *w.FailurePolicy != policy {
			t.Errorf("webhook %s failurePolicy = %s, want %s", w.Name, *w.FailurePolicy, policy)
		}
		if *w.SideEffects != admissionv1.SideEffectClassNone {
			t.Errorf("webhook %s sideEffects = %s", w.Name, *w.SideEffects)
		}
		sel := w.NamespaceSelector.MatchExpressions
		if len(sel) != 1 || sel[0].Key != corev1.LabelMetadataName || sel[0].Operator != "NotIn" || !slices.Equal(sel[0].Values, excluded) {
			t.Errorf("webhook %s namespaceSelector = %+v, want %s NotIn %q", w.Name, sel, corev1.LabelMetadataName, excluded)
		}
	}
	if want := []string{"destinationrules.mtlsguard.io", "peerauthentications.mtlsguard.io", "serviceentries.mtlsguard.io",
		"workloadentries.mtlsguard.io", "sidecars.mtlsguard.io"}; !slices.Equal(names, want) {
		t.Errorf("webhooks %q, want %q", names, want)
	}
}

func deployment(t *testing.T, o objects) *appsv1.Deployment {
	t.Helper()
	var found *unstructured.Unstructured
	for _, u := range o {
		if u.GetKind() == "Deployment" {
			if found != nil {
				t.Fatal("more than one Deployment")
			}
			found = u
		}
	}
	if found == nil {
		t.Fatal("no Deployment")
	}
	return typed[appsv1.Deployment](t, found)
}

// wantArgs checks that the webhook container has every one of args.
func wantArgs(t *testing.T, d *appsv1.Deployment, args ...string) {
	t.Helper()
	have := d.Spec.Template.Spec.Containers[0].Args
	for _, a := range args {
		if !slices.Contains(have, a) {
			t.Errorf("args %q lack %s", have, a)
		}
	}
}

func servingSecretOf(t *testing.T, o objects) string {
	t.Helper()
	for _, v := range deployment(t, o).Spec.Template.Spec.Volumes {
		if v.Name == "serving-cert" && v.Secret != nil {
			return v.Secret.SecretName
		}
	}
	t.Fatal("the Deployment has no serving-cert Secret volume")
	return ""
}

// networkPolicyPorts are the ports the NetworkPolicy admits, by name.
func networkPolicyPorts(t *testing.T, o objects) []string {
	t.Helper()
	np := typed[networkingv1.NetworkPolicy](t, o.find(t, "NetworkPolicy", "mtlsguard"))
	var out []string
	for _, rule := range np.Spec.Ingress {
		if len(rule.From) != 0 {
			t.Errorf("NetworkPolicy rule limited to %v", rule.From)
		}
		for _, p := range rule.Ports {
			out = append(out, p.Port.String())
		}
	}
	return out
}

func servicePorts(t *testing.T, o objects) []string {
	t.Helper()
	var names []string
	for _, u := range o {
		if u.GetKind() == "Service" {
			for _, p := range typed[corev1.Service](t, u).Spec.Ports {
				names = append(names, p.Name)
			}
		}
	}
	return names
}

// chartAppVersion is the appVersion in Chart.yaml, the default image tag.
func chartAppVersion(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil || c.AppVersion == "" {
		t.Fatalf("Chart.yaml: no appVersion (%v)", err)
	}
	return c.AppVersion
}

// goMemLimit is where the webhook container's GOMEMLIMIT comes from, nil
// without one.
func goMemLimit(t *testing.T, d *appsv1.Deployment) *corev1.ResourceFieldSelector {
	t.Helper()
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "GOMEMLIMIT" {
			if e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil {
				t.Fatalf("GOMEMLIMIT = %+v, want it from the downward API", e)
			}
			return e.ValueFrom.ResourceFieldRef
		}
	}
	return nil
}

// reportRules are the report resources (resource.group) ClusterRole name
// grants.
func reportRules(t *testing.T, o objects, name string) []string {
	t.Helper()
	var out []string
	for _, r := range typed[rbacv1.ClusterRole](t, o.find(t, "ClusterRole", name)).Rules {
		for _, g := range r.APIGroups {
			if g == "openreports.io" || g == "wgpolicyk8s.io" {
				for _, res := range r.Resources {
					out = append(out, res+"."+g)
				}
			}
		}
	}
	return out
}
