package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// reportName is the name of mtlsguard's report in each namespace.
const reportName = "mtlsguard"

// managedBy labels the reports mtlsguard writes, so that it finds its own.
var managedBy = map[string]string{"app.kubernetes.io/managed-by": "mtlsguard"}

var openReport = openreportsv1alpha1.SchemeGroupVersion.WithKind("Report")

// sink writes reports of one API as unstructured objects: both APIs share
// their results' shape, and neither needs to be in a scheme.
type sink struct {
	c   client.Client
	gvk schema.GroupVersionKind
}

// stored is a report as the API server has it.
type stored struct {
	obj     *unstructured.Unstructured
	results []result
}

func (s *sink) list(ctx context.Context) (map[string]*stored, error) {
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(s.gvk.GroupVersion().WithKind(s.gvk.Kind + "List"))
	if err := s.c.List(ctx, l, client.MatchingLabels(managedBy)); err != nil {
		return nil, fmt.Errorf("list %s: %w", s.gvk.Kind, err)
	}
	out := map[string]*stored{}
	for i := range l.Items {
		u := &l.Items[i]
		if u.GetName() != reportName {
			continue
		}
		st, err := decode(u)
		if err != nil {
			return nil, err
		}
		out[u.GetNamespace()] = st
	}
	return out, nil
}

func decode(u *unstructured.Unstructured) (*stored, error) {
	b, err := json.Marshal(u.Object)
	if err != nil {
		return nil, err
	}
	var r openreportsv1alpha1.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return &stored{obj: u, results: r.Results}, nil
}

// content renders the fields of a report besides its metadata.
func (s *sink) content(rs []result) (map[string]any, error) {
	sum := summarize(rs)
	if len(rs) > maxResults {
		rs = rs[:maxResults]
	}
	var typed any
	switch s.gvk {
	case openReport:
		r := &openreportsv1alpha1.Report{Source: reportSource, Summary: sum, Results: rs}
		if len(rs) == maxResults {
			r.Configuration = &openreportsv1alpha1.ReportConfiguration{Limits: openreportsv1alpha1.Limits{MaxResults: maxResults}}
		}
		typed = r
	default:
		p := &PolicyReport{Summary: PolicyReportSummary(sum)}
		b, err := json.Marshal(rs)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &p.Results); err != nil {
			return nil, err
		}
		typed = p
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(typed)
	if err != nil {
		return nil, err
	}
	delete(m, "metadata")
	return m, nil
}

// sameContent reports whether an existing report already says what c says.
func sameContent(u *unstructured.Unstructured, c map[string]any) bool {
	for k := range managedBy {
		if u.GetLabels()[k] != managedBy[k] {
			return false
		}
	}
	have := map[string]any{}
	for k := range c {
		have[k] = u.Object[k]
	}
	for _, k := range []string{"summary", "results", "source", "configuration", "scope"} {
		if _, ok := c[k]; !ok && u.Object[k] != nil {
			return false
		}
	}
	a, err1 := json.Marshal(have)
	b, err2 := json.Marshal(c)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// write makes namespace ns's report say rs: created if missing, updated
// only if it says something else. It returns the report as stored.
func (s *sink) write(ctx context.Context, ns string, rs []result, prev *stored) (*stored, error) {
	c, err := s.content(rs)
	if err != nil {
		return nil, err
	}
	if prev != nil && sameContent(prev.obj, c) {
		return prev, nil
	}
	u := &unstructured.Unstructured{}
	if prev != nil {
		u = prev.obj.DeepCopy()
		for _, k := range []string{"summary", "results", "source", "configuration", "scope"} {
			delete(u.Object, k)
		}
	} else {
		u.SetGroupVersionKind(s.gvk)
		u.SetNamespace(ns)
		u.SetName(reportName)
	}
	labels := u.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range managedBy {
		labels[k] = v
	}
	u.SetLabels(labels)
	for k, v := range c {
		u.Object[k] = v
	}
	if prev != nil {
		err = s.c.Update(ctx, u)
	} else {
		err = s.c.Create(ctx, u)
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) {
		// Someone else changed it since we read it: read it again, and
		// retry on the next publication.
		cur := &unstructured.Unstructured{}
		cur.SetGroupVersionKind(s.gvk)
		if gerr := s.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: reportName}, cur); gerr == nil {
			if st, derr := decode(cur); derr == nil {
				return st, fmt.Errorf("write %s %s/%s: %w", s.gvk.Kind, ns, reportName, err)
			}
		}
		return nil, fmt.Errorf("write %s %s/%s: %w", s.gvk.Kind, ns, reportName, err)
	}
	if err != nil {
		return prev, fmt.Errorf("write %s %s/%s: %w", s.gvk.Kind, ns, reportName, err)
	}
	return &stored{obj: u, results: rs}, nil
}

func (s *sink) delete(ctx context.Context, ns string, prev *stored) error {
	err := s.c.Delete(ctx, prev.obj, client.Preconditions{UID: ptr(prev.obj.GetUID())})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s %s/%s: %w", s.gvk.Kind, ns, reportName, err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
