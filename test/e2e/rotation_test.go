package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cert-manager/cert-manager/pkg/api/util"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// certificateRotation forces cert-manager to reissue the serving
// certificate (as cmctl renew does: the Certificate's Issuing condition)
// while writers send the Deep-Dive's bad-rule without pause, and copies the
// new Secret into the running webhook's --cert-dir as the kubelet updates a
// mounted Secret. The webhook must serve the new certificate without a
// restart, and every write must get the webhook's denial: under the shipped
// failurePolicy Ignore, a failed call would admit it silently.
func certificateRotation(ctx context.Context, t *testing.T, c *cluster, w *webhook, certDir string) {
	served := func() *big.Int {
		conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(w.port), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber
	}
	before := served()

	dyn, err := dynamic.NewForConfig(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	drs := dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}).Namespace("default")
	bad := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
		"metadata": map[string]any{"name": "bad-rule", "namespace": "default"},
		"spec": map[string]any{
			"host":          "httpbin.default.svc.cluster.local",
			"trafficPolicy": map[string]any{"tls": map[string]any{"mode": "DISABLE"}},
		},
	}}
	var denied, failed atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := drs.Create(rctx, bad, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				cancel()
				if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "would create 1 new mTLS conflict") {
					denied.Add(1)
					continue
				}
				failed.Add(1)
				if err == nil {
					err = fmt.Errorf("bad-rule admitted: the webhook was not asked, or did not answer")
				}
				firstFailure.CompareAndSwap(nil, err)
			}
		}()
	}

	cm, err := cmclient.NewForConfig(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	start := time.Now()
	crt, err := cm.CertmanagerV1().Certificates(namespace).Get(ctx, "mtlsguard-serving", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	util.SetCertificateCondition(crt, crt.Generation, cmapi.CertificateConditionIssuing, cmmeta.ConditionTrue,
		"ManuallyTriggered", "Certificate re-issuance manually triggered by the e2e test")
	if _, err := cm.CertmanagerV1().Certificates(namespace).UpdateStatus(ctx, crt, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The kubelet's part: the Secret's new data into the mounted files.
	var issued *big.Int
	eventually(t, "cert-manager to reissue Secret "+servingSecret, func() bool {
		s, err := c.client.CoreV1().Secrets(namespace).Get(ctx, servingSecret, metav1.GetOptions{})
		if err != nil {
			return false
		}
		block, _ := pem.Decode(s.Data["tls.crt"])
		if block == nil {
			return false
		}
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil || leaf.SerialNumber.Cmp(before) == 0 {
			return false
		}
		issued = leaf.SerialNumber
		writeAtomically(t, certDir, map[string][]byte{"tls.key": s.Data["tls.key"], "tls.crt": s.Data["tls.crt"]})
		return true
	})
	reissued := time.Since(start)
	eventually(t, "the webhook to serve the new certificate", func() bool { return served().Cmp(issued) == 0 })
	switched := time.Since(start)
	time.Sleep(2 * time.Second) // and keep writing after the switch
	close(stop)
	wg.Wait()

	select {
	case err := <-w.exited:
		w.exited <- err
		t.Fatalf("the webhook exited during the rotation: %v", err)
	default:
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d admissions failed during the rotation, the first: %v", n, firstFailure.Load())
	}
	if denied.Load() == 0 {
		t.Error("no write was answered during the rotation")
	}
	t.Logf("serial %x -> %x: reissued by cert-manager after %v, served by the same process after %v; %d writes denied by the webhook during the rotation, %d failed",
		before, issued, reissued.Round(time.Millisecond), switched.Round(time.Millisecond), denied.Load(), failed.Load())
}

// writeAtomically replaces files in dir the way the kubelet updates a
// mounted Secret: the new files in a fresh directory, then each name
// renamed into place (the kubelet swaps a ..data symlink; both leave no
// half-written file behind).
func writeAtomically(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	tmp, err := os.MkdirTemp(dir, "..data-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The key first: a certificate never names a key that is not there.
	for _, name := range []string{"tls.key", "tls.crt"} {
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}
