package benche2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
)

// recorder keeps, for a request made with a context from withCall, the
// API server's Audit-Id and Warning headers: the Audit-Id finds the request
// in the audit log, where the API server notes a webhook it skipped.
type recorder struct{ next http.RoundTripper }

type callKey struct{}

// call is what the API server said about one request beyond its body.
type call struct {
	mu       sync.Mutex
	auditID  string
	warnings []string
}

func withCall(ctx context.Context) (context.Context, *call) {
	c := &call{}
	return context.WithValue(ctx, callKey{}, c), c
}

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if c, ok := req.Context().Value(callKey{}).(*call); ok && resp != nil {
		c.mu.Lock()
		c.auditID = resp.Header.Get("Audit-Id")
		c.warnings = append(c.warnings, resp.Header.Values("Warning")...)
		c.mu.Unlock()
	}
	return resp, err
}

func (c *call) id() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.auditID
}

// auditEvent is the part of an audit.k8s.io/v1 Event the harness reads.
type auditEvent struct {
	AuditID     string            `json:"auditID"`
	Stage       string            `json:"stage"`
	Annotations map[string]string `json:"annotations"`
}

// failedOpenPrefix starts the annotation the API server adds to a request
// for which it ignored a webhook's failure, a timeout included
// (k8s.io/apiserver's ValidatingAuditAnnotationFailedOpenKeyPrefix).
const failedOpenPrefix = "failed-open.validating.webhook.admission.k8s.io/"

// readAudit returns the ResponseComplete annotations of every audited
// request, by Audit-Id.
func readAudit(path string) (map[string]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if e.Stage == "ResponseComplete" {
			out[e.AuditID] = e.Annotations
		}
	}
	return out, sc.Err()
}

// failedOpen reports whether the annotations say a webhook was skipped.
func failedOpen(annotations map[string]string) bool {
	for k := range annotations {
		if strings.HasPrefix(k, failedOpenPrefix) {
			return true
		}
	}
	return false
}

// mtlsguardDeadline reports whether mtlsguard noted in its audit annotation
// (<webhook name>/decision) that it answered at its --decision-timeout.
func mtlsguardDeadline(annotations map[string]string) bool {
	for k, v := range annotations {
		if strings.HasSuffix(k, ".mtlsguard.io/decision") && v == "timeout" {
			return true
		}
	}
	return false
}
