package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// serve posts body to the validator as the API server does (through
// controller-runtime's admission.Webhook, with panics not recovered, so
// that a panic fails the test) and returns the review it answers.
func serve(v *validator, body []byte, contentType string) (admissionv1.AdmissionReview, error) {
	recoverPanic := false
	wh := &admission.Webhook{Handler: v, RecoverPanic: &recoverPanic}
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r := httptest.NewRequest(http.MethodPost, v.kind.path, rd)
	r = r.WithContext(context.Background())
	r.Header.Set("Content-Type", contentType)
	w := httptest.NewRecorder()
	wh.ServeHTTP(w, r)
	var review admissionv1.AdmissionReview
	if w.Code != http.StatusOK {
		return review, fmt.Errorf("HTTP %d: %s", w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &review); err != nil {
		return review, fmt.Errorf("response is no AdmissionReview: %w: %s", err, w.Body)
	}
	if review.Response == nil {
		return review, fmt.Errorf("AdmissionReview without response: %s", w.Body)
	}
	return review, nil
}

// reviewOf wraps a request in an AdmissionReview body.
func reviewOf(req admission.Request) []byte {
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &req.AdmissionRequest,
	})
	if err != nil {
		panic(err)
	}
	return b
}

// answer renders a response as docs/reliability.md writes it: "allowed" or
// "<code>: <first line of the message>", then "; warning: <w>" for each
// warning.
func answer(resp *admissionv1.AdmissionResponse) string {
	var b strings.Builder
	if resp.Allowed {
		b.WriteString("allowed")
	} else if resp.Result == nil {
		b.WriteString("denied without a status")
	} else {
		first, _, _ := strings.Cut(resp.Result.Message, "\n")
		fmt.Fprintf(&b, "%d: %s", resp.Result.Code, first)
	}
	for _, w := range resp.Warnings {
		b.WriteString("; warning: " + w)
	}
	return b.String()
}
