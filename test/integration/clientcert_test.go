package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtlsguard/mtlsguard/webhook"
)

// apiServerClientCA is the CA of the client certificate the API server
// presents to webhooks (see webhookClientCertificate).
var apiServerClientCA string

// webhookClientCertificate makes the API server present a client
// certificate to the webhook at hostPort, as README's "Client
// certificates" tells an operator to: a CA and a certificate it signs, a
// kubeconfig naming them for the webhook's host, and the
// AdmissionConfiguration that points the ValidatingAdmissionWebhook plugin
// at it. It returns the AdmissionConfiguration's path.
func webhookClientCertificate(dir, hostPort string) (string, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "webhook-client-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver-webhook-client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", err
	}
	apiServerClientCA = filepath.Join(dir, "webhook-client-ca.crt")
	kubeconfig := filepath.Join(dir, "webhook-kubeconfig.yaml")
	admission := filepath.Join(dir, "admission-configuration.yaml")
	files := map[string][]byte{
		apiServerClientCA:                        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		filepath.Join(dir, "webhook-client.crt"): pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		filepath.Join(dir, "webhook-client.key"): pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		// The user's name is the webhook's host: the Service's DNS name
		// (mtlsguard.mtlsguard-system.svc) in a cluster, the URL's
		// host:port here.
		kubeconfig: fmt.Appendf(nil, `apiVersion: v1
kind: Config
users:
- name: %q
  user:
    client-certificate: %s
    client-key: %s
`, hostPort, filepath.Join(dir, "webhook-client.crt"), filepath.Join(dir, "webhook-client.key")),
		admission: fmt.Appendf(nil, `apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %s
`, kubeconfig),
	}
	for path, b := range files {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return "", err
		}
	}
	return admission, nil
}

// TestClientCertificateRequired runs the webhook with --client-ca-file: the
// API server, configured as README says, still gets its answers; a client
// without a certificate of that CA does not get past the handshake.
func TestClientCertificateRequired(t *testing.T) {
	r := startWebhook(t, func(o *webhook.Options) { o.ClientCAFile = apiServerClientCA })
	c := newCluster(t)
	deepDive(t, c)
	eventually(t, 30*time.Second, func() error {
		_, err := c.do(func(ctx context.Context) error { return c.Create(ctx, badRule(), client.DryRunAll) })
		if !apierrors.IsForbidden(err) || err.Error() != badRuleDenial {
			return fmt.Errorf("dry-run create of bad-rule through the API server: %v", err)
		}
		return nil
	})
	addr := r.options.Host + ":" + strconv.Itoa(r.options.Port)
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		// TLS 1.3: the server's verdict on the client arrives after the
		// client's side of the handshake; the first read gets it.
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("a client without a certificate got an answer")
	}
	t.Logf("without a client certificate: %v", err)
}
