package webhook

import (
	"fmt"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

func row(host string, namespaces ...string) conflict {
	return conflict{
		columns:    []string{host + ":8000", "CONFLICT", "mTLS", "HTTP", "default/istio-system", "bad-rule/default"},
		namespaces: namespaces,
	}
}

func rows(n int) verdict {
	v := verdict{total: n}
	for i := range min(n, maxRows) {
		v.conflicts = append(v.conflicts, row(fmt.Sprintf("svc%02d.default.svc.cluster.local", i), "default"))
	}
	return v
}

func TestWarningLine(t *testing.T) {
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + ".svc.cluster.local"
	many := conflict{columns: row(long).columns, namespaces: []string{"n1", "n2", "n3", "n4", "n5"}, moreNamespaces: 995}
	scenarios := map[string]struct {
		c    conflict
		want string
	}{
		"full host when it fits": {
			c:    conflict{columns: []string{"a.b.svc.cluster.local:80", "CONFLICT", "mTLS", "HTTP", "-", "r/b"}, namespaces: []string{"b"}},
			want: "a.b.svc.cluster.local:80 CONFLICT server=mTLS client=HTTP authn=- dr=r/b clients=b",
		},
		"short host otherwise": {
			c:    row("httpbin.default.svc.cluster.local", "default"),
			want: badRuleWarning,
		},
		"subset": {
			c:    conflict{columns: []string{"httpbin.default.svc.cluster.local|v1:8000", "CONFLICT", "mTLS", "HTTP", "-", "r/default"}, namespaces: []string{"default"}},
			want: "httpbin.default.svc.cluster.local|v1:8000 CONFLICT server=mTLS client=HTTP authn=- dr=r/default clients=default",
		},
		"no policy names when still too long": {
			c:    row("productpage-v1.bookinfo-production.svc.cluster.local", "bookinfo-production"),
			want: "productpage-v1.bookinfo-production:8000 CONFLICT server=mTLS client=HTTP clients=bookinfo-production",
		},
		"clipped when nothing else helps": {
			c:    many,
			want: clip(strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + ":8000 CONFLICT server=mTLS client=HTTP clients=n1,n2,n3,n4,n5,+995"),
		},
		"many namespaces": {
			c:    conflict{columns: row("a.b.svc.cluster.local").columns, namespaces: []string{"n1", "n2"}, moreNamespaces: 7},
			want: "a.b:8000 CONFLICT server=mTLS client=HTTP authn=default/istio-system dr=bad-rule/default clients=n1,n2,+7",
		},
	}
	for name, s := range scenarios {
		t.Run(name, func(t *testing.T) {
			got := warningLine(s.c, "cluster.local")
			if got != s.want {
				t.Errorf("warningLine =\n%s\nwant\n%s", got, s.want)
			}
			if len(got) >= 120 || strings.ContainsAny(got, "\r\n") {
				t.Errorf("warning is %d characters or has a newline: %q", len(got), got)
			}
		})
	}
}

func TestConflictWarnings(t *testing.T) {
	for _, n := range []int{1, 10, 11, 12, 25} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			w := conflictWarnings(rows(n), "cluster.local")
			wantLen := min(n, maxRows)
			if n > maxRows {
				wantLen++
			}
			if len(w) != wantLen {
				t.Fatalf("%d warnings, want %d: %q", len(w), wantLen, w)
			}
			if n > maxRows {
				if want := "and " + plural(n-maxRows, "more new mTLS conflict"); w[len(w)-1] != want {
					t.Errorf("last warning %q, want %q", w[len(w)-1], want)
				}
			}
			for _, s := range w {
				if len(s) >= 120 || strings.ContainsAny(s, "\r\n") {
					t.Errorf("warning is %d characters or has a newline: %q", len(s), s)
				}
			}
		})
	}
	if w := conflictWarnings(rows(11), "cluster.local"); w[len(w)-1] != "and 1 more new mTLS conflict" {
		t.Errorf("singular: %q", w[len(w)-1])
	}
}

func TestDenialMessage(t *testing.T) {
	o := object{kind: destinationRules, namespace: "default", name: "bad-rule", operation: admissionv1.Create}
	t.Run("bad-rule", func(t *testing.T) {
		v := verdict{total: 1, conflicts: []conflict{row("httpbin.default.svc.cluster.local", "default")}}
		if got := denialMessage(o, v); got != badRuleDenial {
			t.Errorf("got\n%s\nwant\n%s", got, badRuleDenial)
		}
	})
	t.Run("ten rows then and N more", func(t *testing.T) {
		got := denialMessage(o, rows(25))
		lines := strings.Split(got, "\n")
		if len(lines) != 1+1+maxRows+1 {
			t.Fatalf("%d lines:\n%s", len(lines), got)
		}
		if lines[0] != "DestinationRule default/bad-rule would create 25 new mTLS conflicts:" {
			t.Errorf("first line %q", lines[0])
		}
		if lines[len(lines)-1] != "and 15 more" {
			t.Errorf("last line %q", lines[len(lines)-1])
		}
	})
	t.Run("exactly ten rows", func(t *testing.T) {
		got := denialMessage(o, rows(10))
		if strings.Contains(got, "more") || strings.Count(got, "\n") != 11 {
			t.Errorf("got\n%s", got)
		}
	})
	t.Run("delete and many namespaces", func(t *testing.T) {
		d := o
		d.operation = admissionv1.Delete
		c := row("httpbin.default.svc.cluster.local", "a", "b", "c", "d", "e")
		c.moreNamespaces = 3
		got := denialMessage(d, verdict{total: 1, conflicts: []conflict{c}})
		if !strings.HasPrefix(got, "deleting DestinationRule default/bad-rule would create 1 new mTLS conflict:\n") ||
			!strings.HasSuffix(got, "     a, b, c, d, e and 3 more") {
			t.Errorf("got\n%s", got)
		}
	})
}

func TestClip(t *testing.T) {
	if got := clip("short"); got != "short" {
		t.Errorf("clip(short) = %q", got)
	}
	s := strings.Repeat("é", 100) // 200 bytes
	got := clip(s)
	if len(got) > maxWarning || !strings.HasSuffix(got, "...") || !strings.HasPrefix(s, strings.TrimSuffix(got, "...")) {
		t.Errorf("clip = %q (%d bytes)", got, len(got))
	}
	if strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("clip split a UTF-8 sequence: %q", got)
	}
}
