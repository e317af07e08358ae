package webhook

import (
	"context"
	"strings"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
)

const (
	// The Deep-Dive's httpbin pod runs as the default service account.
	httpbinIdentity = "spiffe://cluster.local/ns/default/sa/default"
	otherIdentity   = "spiffe://cluster.local/ns/default/sa/other"
)

// sansRule is an ISTIO_MUTUAL DestinationRule for httpbin that checks its
// certificate against sans, as written.
func sansRule(sans ...string) *networkingv1.DestinationRule {
	dr := destRule("default", "httpbin-sans", "httpbin.default.svc.cluster.local", networkingapi.ClientTLSSettings_ISTIO_MUTUAL)
	dr.Spec.TrafficPolicy.Tls.SubjectAltNames = sans
	dr.CreationTimestamp = badRule().CreationTimestamp
	return dr
}

func TestIdentityConflictsSayWhichIdentityTheRuleRejects(t *testing.T) {
	const why = "server identity " + httpbinIdentity + " not in subjectAltNames [" + otherIdentity + "]"
	tests := map[string]struct {
		rule    *networkingv1.DestinationRule
		mode    Mode
		disc    Disclose
		may     []string
		lastMsg string   // the denial's last line (enforce)
		warns   []string // the warnings (audit)
		noWhy   bool     // no line names an identity
	}{
		"enforce: the denial names the server identity and the subjectAltNames": {
			rule: sansRule(otherIdentity), mode: Enforce,
			lastMsg: "httpbin.default.svc.cluster.local:8000: " + why,
		},
		"enforce: several SANs, all listed": {
			rule: sansRule(otherIdentity, "spiffe://cluster.local/ns/default/sa/third"), mode: Enforce,
			lastMsg: "httpbin.default.svc.cluster.local:8000: server identity " + httpbinIdentity +
				" not in subjectAltNames [" + otherIdentity + ", spiffe://cluster.local/ns/default/sa/third]",
		},
		"enforce: a SAN without the spiffe:// scheme is shown as written": {
			rule: sansRule("cluster.local/ns/default/sa/default"), mode: Enforce,
			lastMsg: "httpbin.default.svc.cluster.local:8000: server identity " + httpbinIdentity +
				" not in subjectAltNames [cluster.local/ns/default/sa/default]",
		},
		"enforce: a conflict of modes has no identity line": {
			rule: badRule(), mode: Enforce, noWhy: true,
			lastMsg: strings.Split(badRuleDenial, "\n")[2],
		},
		"audit: a warning after the row names both identities": {
			rule: sansRule(otherIdentity), mode: Audit,
			warns: []string{
				"httpbin.default:8000 CONFLICT server=mTLS client=mTLS clients=default",
				"identity " + httpbinIdentity + " not in SANs [" + otherIdentity + "]",
			},
		},
		"audit: long names say their shared prefix once": {
			rule: sansRule("spiffe://cluster.local/ns/default/sa/productpage-reviews-ratings"), mode: Audit,
			warns: []string{
				"httpbin.default:8000 CONFLICT server=mTLS client=mTLS clients=default",
				"under spiffe://cluster.local/ns/default/sa/: identity default not in SANs [productpage-reviews-ratings]",
			},
		},
		"permitted: an identity whose service account the requester may not get is withheld": {
			rule: sansRule(otherIdentity), mode: Enforce, disc: DisclosePermitted,
			may:     []string{"services default/*", "peerauthentications istio-system/*"},
			lastMsg: "httpbin.default.svc.cluster.local:8000: server identity (withheld) not in subjectAltNames [" + otherIdentity + "]",
		},
		"permitted: the requester may get the service account": {
			rule: sansRule(otherIdentity), mode: Enforce, disc: DisclosePermitted,
			may:     []string{"services default/*", "serviceaccounts default/default"},
			lastMsg: "httpbin.default.svc.cluster.local:8000: " + why,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			disc := tc.disc
			if disc == "" {
				disc = DiscloseAll
			}
			v := testValidator(t, destinationRules, deepDive(t), func(o *Options) { o.DefaultMode, o.Disclose = tc.mode, disc })
			p := &permissions{may: map[string]bool{}}
			for _, m := range tc.may {
				p.may[m] = true
			}
			v.access = p
			req := request(t, admissionv1.Create, tc.rule, nil)
			req.UserInfo = authenticationv1.UserInfo{Username: "alice"}
			resp := v.Handle(context.Background(), req)

			var texts []string
			switch tc.mode {
			case Enforce:
				if resp.Allowed || resp.Result == nil {
					t.Fatalf("allowed: %+v", resp)
				}
				msg := resp.Result.Message
				lines := strings.Split(msg, "\n")
				if got := lines[len(lines)-1]; got != tc.lastMsg {
					t.Errorf("denial's last line\n%q\nwant\n%q\ndenial:\n%s", got, tc.lastMsg, msg)
				}
				texts = append(texts, msg)
			case Audit:
				if !resp.Allowed {
					t.Fatalf("denied in audit mode: %+v", resp.Result)
				}
				if strings.Join(resp.Warnings, "\n") != strings.Join(tc.warns, "\n") {
					t.Errorf("warnings\n%q\nwant\n%q", resp.Warnings, tc.warns)
				}
				for _, w := range resp.Warnings {
					if len(w) >= 120 || strings.ContainsAny(w, "\r\n") {
						t.Errorf("warning is %d characters or has a newline: %q", len(w), w)
					}
				}
				texts = append(texts, resp.Warnings...)
			}
			// The audit log names everything, whatever the requester sees.
			a := resp.AuditAnnotations[annotationConflicts]
			if tc.noWhy {
				texts = append(texts, a)
				for _, s := range texts {
					if strings.Contains(s, "identity") {
						t.Errorf("names an identity for a conflict of modes: %q", s)
					}
				}
			} else if !strings.HasSuffix(a, "dr=httpbin-sans/default clients=default: server identity "+httpbinIdentity+" not in subjectAltNames ["+strings.Join(tc.rule.Spec.TrafficPolicy.Tls.SubjectAltNames, ", ")+"]") {
				t.Errorf("audit annotation %q", a)
			}
		})
	}
}

func TestIdentityWarningFitsWhateverTheNames(t *testing.T) {
	long := "spiffe://cluster.local/ns/" + strings.Repeat("n", 63) + "/sa/" + strings.Repeat("s", 63)
	tests := map[string]struct {
		c    conflict
		want string
	}{
		"the spelled-out form when it fits": {
			c:    conflict{columns: []string{"a.b.svc.cluster.local:80"}, rejected: []string{"spiffe://td/ns/b/sa/a"}, sans: []string{"spiffe://td/ns/b/sa/x"}},
			want: "a.b:80: server identity spiffe://td/ns/b/sa/a not in subjectAltNames [spiffe://td/ns/b/sa/x]",
		},
		"several identities and many SANs are counted": {
			c: conflict{columns: []string{"a.b.svc.cluster.local:80"},
				rejected: []string{"spiffe://td/ns/b/sa/a", "spiffe://td/ns/b/sa/b", "spiffe://td/ns/b/sa/c", "spiffe://td/ns/b/sa/d"},
				sans:     []string{"spiffe://td/ns/b/sa/1", "spiffe://td/ns/b/sa/2", "spiffe://td/ns/b/sa/3", "spiffe://td/ns/b/sa/4", "spiffe://td/ns/b/sa/5", "spiffe://td/ns/b/sa/6"}},
			want: "under spiffe://td/ns/b/sa/: identities a,b,c,+1 not in SANs [1,2,3,4,5,+1]",
		},
		"other trust domains share only the scheme, so the compact form is clipped": {
			c:    conflict{columns: []string{"a.b.svc.cluster.local:80"}, rejected: []string{long}, sans: []string{"spiffe://other.td/ns/b/sa/x"}},
			want: clip("identity " + long + " not in SANs [spiffe://other.td/ns/b/sa/x]"),
		},
		"an endpoint without an identity": {
			c:    conflict{columns: []string{"db.example.com:5432"}, rejected: []string{""}, sans: []string{"spiffe://td/ns/b/sa/x"}},
			want: "db.example.com:5432: server identity (none) not in subjectAltNames [spiffe://td/ns/b/sa/x]",
		},
		"not an identity conflict": {
			c: row("httpbin.default.svc.cluster.local", "default"),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := identityWarning(tc.c, "cluster.local")
			if got != tc.want {
				t.Errorf("identityWarning =\n%q\nwant\n%q", got, tc.want)
			}
			if len(got) > maxWarning {
				t.Errorf("%d characters", len(got))
			}
		})
	}
}
