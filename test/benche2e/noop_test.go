package benche2e

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

// noopWebhook is the baseline arm: an HTTPS admission webhook in this
// process that admits everything. Registered exactly like mtlsguard (same
// configuration, certificate, timeout and failure policy), the difference
// between the arms is mtlsguard's work, not the cost of calling a webhook.
type noopWebhook struct {
	port     int
	requests atomic.Int64
}

func startNoop(t *testing.T, c *certs) *noopWebhook {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &noopWebhook{port: l.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{
		Handler:           http.HandlerFunc(n.serve),
		ReadHeaderTimeout: 10 * time.Second,
		// As mtlsguard: TLS 1.2 and up, HTTP/1.1 only.
		TLSConfig:    &tls.Config{Certificates: []tls.Certificate{c.pair}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	go func() {
		if err := srv.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("no-op webhook: %v", err)
		}
	}()
	t.Cleanup(func() { srv.Close() })
	return n
}

func (n *noopWebhook) serve(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	n.requests.Add(1)
	review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	review.Request = nil
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(&review) //nolint:errcheck // the API server sees a broken answer
}
