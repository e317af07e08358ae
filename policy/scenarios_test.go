package policy_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/mtlsguard/mtlsguard/internal/load"
	"github.com/mtlsguard/mtlsguard/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/scenarios")

// TestScenarios replays every directory under testdata/scenarios:
//
//	cluster.yaml     the cluster (any file tls-check -f reads)
//	table.golden     the full table for every client view, then every
//	                 endpoint verdict
//	write.yaml       optional: one DestinationRule, PeerAuthentication,
//	                 ServiceEntry, WorkloadEntry or Sidecar and
//	                 a first line "# op: create|update|delete"; for update and
//	                 delete the old object is the one in cluster.yaml
//	decision.golden  the rows the write newly breaks and resolves
//
// Run with -update to rewrite the golden files, then review the diff.
func TestScenarios(t *testing.T) {
	dirs, err := os.ReadDir("testdata/scenarios")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		dir := filepath.Join("testdata/scenarios", d.Name())
		t.Run(d.Name(), func(t *testing.T) {
			st, objs := loadState(t, filepath.Join(dir, "cluster.yaml"))
			groups, err := st.Table(policy.Query{})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(dir, "table.golden"), renderTable(policy.Expand(groups)))

			write := filepath.Join(dir, "write.yaml")
			if _, err := os.Stat(write); err != nil {
				if _, err := os.Stat(filepath.Join(dir, "decision.golden")); err == nil {
					t.Fatalf("decision.golden without write.yaml")
				}
				return
			}
			ch := readChange(t, write, objs)
			dec, err := st.Decide(context.Background(), ch)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(dir, "decision.golden"), renderDecision(dec))
		})
	}
}

func loadState(t *testing.T, path string) (*policy.State, []runtime.Object) {
	t.Helper()
	res, err := load.Paths([]string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) > 0 {
		t.Fatalf("unexpected kinds: %v", res.Skipped)
	}
	st, err := load.State(res.Objects, policy.DefaultMesh())
	if err != nil {
		t.Fatal(err)
	}
	return st, res.Objects
}

func readChange(t *testing.T, path string, cluster []runtime.Object) policy.Change {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	op := strings.TrimSpace(strings.TrimPrefix(first, "# op:"))
	var res load.Result
	if err := res.Read(path, bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	if len(res.Objects) != 1 {
		t.Fatalf("%s: want one object, got %d", path, len(res.Objects))
	}
	obj := res.Objects[0]
	old := find(cluster, obj)
	switch op {
	case "create":
		if old != nil {
			t.Fatalf("%s: create of an object cluster.yaml already has", path)
		}
		return policy.Change{New: obj}
	case "update":
		if old == nil {
			t.Fatalf("%s: update of an object cluster.yaml lacks", path)
		}
		return policy.Change{Old: old, New: obj}
	case "delete":
		if old == nil {
			t.Fatalf("%s: delete of an object cluster.yaml lacks", path)
		}
		return policy.Change{Old: old}
	}
	t.Fatalf("%s: first line must be '# op: create|update|delete', got %q", path, first)
	return policy.Change{}
}

func find(objs []runtime.Object, like runtime.Object) runtime.Object {
	id := func(o runtime.Object) string {
		switch v := o.(type) {
		case *networkingv1.DestinationRule:
			return "dr/" + v.Namespace + "/" + v.Name
		case *securityv1.PeerAuthentication:
			return "pa/" + v.Namespace + "/" + v.Name
		case *networkingv1.ServiceEntry:
			return "se/" + v.Namespace + "/" + v.Name
		case *networkingv1.WorkloadEntry:
			return "we/" + v.Namespace + "/" + v.Name
		case *networkingv1.Sidecar:
			return "sidecar/" + v.Namespace + "/" + v.Name
		}
		return ""
	}
	for _, o := range objs {
		if id(o) != "" && id(o) == id(like) {
			return o
		}
	}
	return nil
}

func renderTable(rows []policy.ViewRow) string {
	var b bytes.Buffer
	if err := policy.WriteTable(&b, rows, true); err != nil {
		panic(err)
	}
	b.WriteString("\nENDPOINTS\n")
	for _, r := range rows {
		for _, ep := range r.Endpoints {
			verdict := "ok"
			if !ep.OK {
				verdict = "FAIL"
			}
			fmt.Fprintf(&b, "%s -> %s => %s:%d %s (%s) sends %s %s\n",
				r.View, r.HostPort(), ep.Pod, ep.TargetPort, ep.ServerMode, ep.AuthnPolicy, ep.ClientSends, verdict)
			if r.SubjectAltNames != nil {
				// Rows whose rule lists subjectAltNames also show the
				// identity check.
				fmt.Fprintf(&b, "    identity %s, client checks subjectAltNames %v\n", ep.Identity, r.SubjectAltNames)
				if !ep.OK {
					fmt.Fprintf(&b, "    reason: %s\n", ep.Reason)
				}
			}
		}
	}
	return b.String()
}

func renderDecision(d policy.Decision) string {
	var b bytes.Buffer
	for _, part := range []struct {
		name   string
		groups []policy.Group
	}{{"NEW", d.New}, {"RESOLVED", d.Resolved}} {
		fmt.Fprintf(&b, "%s %d\n", part.name, len(part.groups))
		for _, g := range part.groups {
			var views []string
			for _, v := range g.Views.List() {
				views = append(views, v.String()) // namespace[workloadSelector rules]
			}
			fmt.Fprintf(&b, "  %s  clients: %s\n", strings.Join(g.Row.Columns(), "  "), strings.Join(views, ","))
		}
	}
	return b.String()
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./policy -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s\nIf the change is expected, re-run with -update.", path, diff)
	}
}
