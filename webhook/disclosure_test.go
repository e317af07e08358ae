package webhook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// permissions is an AccessReviewer from a table: "resource namespace/name"
// entries ("*" for any name) a user may get.
type permissions struct {
	mu    sync.Mutex
	may   map[string]bool
	err   error
	asked int
}

func (p *permissions) Allowed(_ context.Context, user authenticationv1.UserInfo, a authorizationv1.ResourceAttributes) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked++
	if p.err != nil {
		return false, p.err
	}
	if a.Verb != "get" || user.Username != "alice" {
		return false, nil
	}
	return p.may[a.Resource+" "+a.Namespace+"/"+a.Name] || p.may[a.Resource+" "+a.Namespace+"/*"], nil
}

// tenants is a mesh where the clients of team-a's api live in eight
// namespaces, and a rule in the root namespace sends them plaintext to it:
// a STRICT policy in team-a breaks them all.
func tenants(t *testing.T) *Store {
	objs := []runtime.Object{namespace("team-a", nil), service("team-a", "api", 80, 0), sidecarPod("team-a", "api-1", "api")}
	for _, ns := range []string{"team-b", "team-c", "team-d", "team-e", "team-f", "team-g", "team-h"} {
		objs = append(objs, namespace(ns, nil), sidecarPod(ns, "client-1", "client"))
	}
	objs = append(objs,
		peerAuth("istio-system", "default", securityapi.PeerAuthentication_MutualTLS_PERMISSIVE),
		destRule("istio-system", "api-plaintext", "api.team-a.svc.cluster.local", networkingapi.ClientTLSSettings_DISABLE),
	)
	// After deepDive's: the mesh-wide policy turns PERMISSIVE.
	return deepDive(t, objs...)
}

func TestDenialNamesOnlyWhatTheRequesterMayGet(t *testing.T) {
	strict := peerAuth("team-a", "strict", securityapi.PeerAuthentication_MutualTLS_STRICT)
	strict.CreationTimestamp = created
	for name, tc := range map[string]struct {
		disclose Disclose
		may      []string
		err      error
		want     string // the denial's row, its columns separated by one space
	}{
		"all: every name": {
			disclose: DiscloseAll,
			want:     "api.team-a.svc.cluster.local:80 CONFLICT mTLS HTTP strict/team-a api-plaintext/istio-system default, team-a, team-b, team-c, team-d and 4 more",
		},
		"permitted, a tenant of team-a: only their namespace": {
			disclose: DisclosePermitted,
			may:      []string{"services team-a/*", "peerauthentications team-a/*", "namespaces team-a/team-a"},
			want:     "api.team-a.svc.cluster.local:80 CONFLICT mTLS HTTP strict/team-a (withheld) team-a and 8 more",
		},
		"permitted, also reads team-c and the root rule": {
			disclose: DisclosePermitted,
			may: []string{"services team-a/*", "namespaces team-a/team-a", "namespaces team-c/team-c",
				"destinationrules istio-system/api-plaintext"},
			want: "api.team-a.svc.cluster.local:80 CONFLICT mTLS HTTP strict/team-a api-plaintext/istio-system team-a, team-c and 7 more",
		},
		"permitted, the authorizer fails: nothing but the request's own namespace and object": {
			disclose: DisclosePermitted,
			err:      errors.New("connection refused"),
			want:     "(withheld):80 CONFLICT mTLS HTTP strict/team-a (withheld) team-a and 8 more",
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := tenants(t)
			v := testValidator(t, peerAuthentications, s, func(o *Options) { o.Disclose = tc.disclose })
			p := &permissions{may: map[string]bool{}, err: tc.err}
			for _, m := range tc.may {
				p.may[m] = true
			}
			v.access = p
			req := request(t, admissionv1.Create, strict, nil)
			req.UserInfo = authenticationv1.UserInfo{Username: "alice", Groups: []string{"team-a-devs"}}
			resp := v.Handle(context.Background(), req)
			if resp.Allowed || resp.Result == nil {
				t.Fatalf("allowed: %+v", resp)
			}
			lines := strings.Split(resp.Result.Message, "\n")
			if len(lines) != 3 {
				t.Fatalf("denial:\n%s", resp.Result.Message)
			}
			if got := strings.Join(strings.Fields(lines[2]), " "); got != tc.want {
				t.Errorf("row\n%q\nwant\n%q", got, tc.want)
			}
			// The audit log, for administrators, names everything.
			if a := resp.AuditAnnotations[annotationConflicts]; !strings.Contains(a, "dr=api-plaintext/istio-system clients=default,team-a,team-b,team-c,team-d,+4") {
				t.Errorf("audit annotation %q", a)
			}
		})
	}
}

func TestDisclosureWithholdsAServiceInANamespaceTheRequesterMayNotRead(t *testing.T) {
	// A rule in team-a sends its clients plaintext to every service: the
	// STRICT ones of default and team-b, which alice may not read, break.
	s := deepDive(t,
		namespace("team-a", nil), sidecarPod("team-a", "client-1", "client"),
		namespace("team-b", nil), service("team-b", "secret-api", 8443, 0), sidecarPod("team-b", "secret-api-1", "secret-api"),
	)
	v := testValidator(t, destinationRules, s, func(o *Options) { o.Disclose = DisclosePermitted })
	v.access = &permissions{may: map[string]bool{"namespaces team-a/team-a": true, "destinationrules team-a/*": true}}
	dr := destRule("team-a", "everything-plain", "*.svc.cluster.local", networkingapi.ClientTLSSettings_DISABLE)
	dr.CreationTimestamp = created
	req := request(t, admissionv1.Create, dr, nil)
	req.UserInfo = authenticationv1.UserInfo{Username: "alice"}
	resp := v.Handle(context.Background(), req)
	if resp.Allowed {
		t.Fatal("allowed")
	}
	msg := resp.Result.Message
	for _, leak := range []string{"team-b", "secret-api", "httpbin", "sleep", "istio-system"} {
		if strings.Contains(msg, leak) {
			t.Errorf("the denial names %q:\n%s", leak, msg)
		}
	}
	if !strings.Contains(msg, "(withheld):8443") || !strings.Contains(msg, "everything-plain/team-a") {
		t.Errorf("denial:\n%s", msg)
	}
}

func TestAccessCacheAsksOncePerUserAndQuestionUntilItExpires(t *testing.T) {
	p := &permissions{may: map[string]bool{"namespaces x/x": true}}
	c := newAccessCache(p, 30*time.Second, 3)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	alice := authenticationv1.UserInfo{Username: "alice"}
	aliceAdmin := authenticationv1.UserInfo{Username: "alice", Groups: []string{"system:masters"}}
	q := func(ns string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: "get", Resource: "namespaces", Namespace: ns, Name: ns}
	}
	ask := func(u authenticationv1.UserInfo, ns string) bool {
		ok, err := c.Allowed(context.Background(), u, q(ns))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for i := 0; i < 3; i++ {
		if !ask(alice, "x") || ask(alice, "y") {
			t.Fatal("wrong answer")
		}
	}
	if p.asked != 2 {
		t.Errorf("asked %d times, want 2", p.asked)
	}
	ask(aliceAdmin, "x") // other groups: another user
	if p.asked != 3 {
		t.Errorf("asked %d times, want 3", p.asked)
	}
	now = now.Add(31 * time.Second)
	ask(alice, "x")
	if p.asked != 4 {
		t.Errorf("asked %d times after expiry, want 4", p.asked)
	}
	for i := range 10 {
		ask(alice, fmt.Sprint("ns", i))
	}
	if n := len(c.answers); n > 3 {
		t.Errorf("%d answers kept, want at most 3", n)
	}
	p.err = errors.New("down")
	now = now.Add(time.Minute)
	if ok, err := c.Allowed(context.Background(), alice, q("x")); ok || err == nil {
		t.Errorf("an error: %v, %v", ok, err)
	}
	p.err = nil
	if !ask(alice, "x") {
		t.Error("the error was remembered")
	}
}
