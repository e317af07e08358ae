package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// theDisclosureRuleIsNeeded proves manifests/base/rbac-disclosure.yaml has
// a purpose: a webhook running as a ServiceAccount with the same cache
// rules but without it cannot ask whether the requester may read the
// mesh-wide PeerAuthentication, and withholds its name from an
// administrator's denial, which the installed webhook names.
func theDisclosureRuleIsNeeded(ctx context.Context, t *testing.T, c *cluster, installed *webhook, certDir string) {
	clusterRole, err := c.client.RbacV1().ClusterRoles().Get(ctx, serviceAccount, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	role, err := c.client.RbacV1().Roles("istio-system").Get(ctx, serviceAccount, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const sa = "mtlsguard-without-disclosure"
	grant(ctx, t, c, sa, clusterRole.Rules, role.Rules)
	w := c.startWebhook(t, sa, certDir, c.impersonatingKubeconfig(t, namespace, sa), freePort(t),
		"--leader-elect=false", "--report-api=none")
	w.waitReady(t, 90*time.Second)

	for _, tc := range []struct {
		name     string
		w        *webhook
		named    bool
		withheld bool
	}{
		{"installed: names it", installed, true, false},
		{"without the SubjectAccessReview rule: withholds it", w, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var msg string
			eventually(t, "a denial of bad-rule from "+tc.w.name, func() bool {
				msg = denialFrom(t, tc.w)
				return strings.Contains(msg, "would create 1 new mTLS conflict")
			})
			if strings.Contains(msg, "default/istio-system") != tc.named || strings.Contains(msg, "(withheld)") != tc.withheld {
				t.Errorf("denial to a cluster administrator from %s:\n%s", tc.w.name, msg)
			}
		})
	}
}

// denialFrom posts the Deep-Dive's bad-rule, written by a cluster
// administrator, straight to a webhook process as the API server would, and
// returns the message of its answer.
func denialFrom(t *testing.T, w *webhook) string {
	t.Helper()
	review := map[string]any{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]any{
			"uid":       "e2e-disclosure",
			"kind":      map[string]any{"group": "networking.istio.io", "version": "v1", "kind": "DestinationRule"},
			"resource":  map[string]any{"group": "networking.istio.io", "version": "v1", "resource": "destinationrules"},
			"namespace": "default", "name": "bad-rule", "operation": "CREATE",
			"userInfo": map[string]any{"username": "e2e-admin", "groups": []string{"system:masters", "system:authenticated"}},
			"object": map[string]any{
				"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
				"metadata": map[string]any{"name": "bad-rule", "namespace": "default"},
				"spec": map[string]any{
					"host":          "httpbin.default.svc.cluster.local",
					"trafficPolicy": map[string]any{"tls": map[string]any{"mode": "DISABLE"}},
				},
			},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Post("https://127.0.0.1:"+strconv.Itoa(w.port)+"/validate/destinationrules", "application/json", bytes.NewReader(body))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		Response struct {
			Allowed bool `json:"allowed"`
			Status  struct {
				Message string `json:"message"`
			} `json:"status"`
		} `json:"response"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Sprintf("%s: %v: %s", resp.Status, err, b)
	}
	return out.Response.Status.Message
}
