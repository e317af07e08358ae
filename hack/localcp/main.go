// Command localcp runs a throwaway Kubernetes control plane for hack/demo.sh:
// etcd and kube-apiserver from a bin directory (started by controller-runtime's
// envtest on free local ports), the given CRDs, a cluster-admin kubeconfig, a
// serving certificate for a webhook on 127.0.0.1 from a CA of its own, and
// mtlsguard's ValidatingWebhookConfiguration from manifests/ pointed at that
// address. It needs nothing but the binaries: no openssl, no cfssl.
//
// Into -dir it writes kubeconfig, certs/{tls.crt,tls.key,ca.crt},
// webhook.yaml, ports.env (WEBHOOK_PORT, HEALTH_PORT, METRICS_PORT) and, once
// all of that is in place, ready. It runs until SIGINT or SIGTERM, then stops
// the control plane.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "localcp:", err)
		os.Exit(1)
	}
}

func run() error {
	var crds stringList
	bin := flag.String("bin", "bin", "directory with etcd and kube-apiserver")
	dir := flag.String("dir", "", "directory to write kubeconfig, certs and webhook.yaml into (required)")
	webhookConfig := flag.String("webhook-config", "manifests/base/webhook.yaml", "the ValidatingWebhookConfiguration to point at 127.0.0.1")
	flag.Var(&crds, "crds", "a CRD file or directory to install (repeatable)")
	flag.Parse()
	if *dir == "" {
		return fmt.Errorf("-dir is required")
	}
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(*bin, name)); err != nil {
			return fmt.Errorf("%w: run `make bin` first", err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	env := &envtest.Environment{
		BinaryAssetsDirectory: *bin,
		CRDInstallOptions:     envtest.CRDInstallOptions{Paths: crds, ErrorIfPathMissing: true},
	}
	// envtest's default service range is a /24, about 250 Services; a /12
	// holds a million. Only an API server flag: nothing is routed.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/12")
	if _, err := env.Start(); err != nil {
		return fmt.Errorf("starting etcd and kube-apiserver: %w", err)
	}
	defer env.Stop() //nolint:errcheck // best effort on the way out

	if err := setUp(env, *dir, *webhookConfig); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// setUp writes everything demo.sh needs into dir, ready last.
func setUp(env *envtest.Environment, dir, webhookConfig string) error {
	admin, err := env.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return err
	}

	ports := map[string]int{}
	for _, name := range []string{"WEBHOOK_PORT", "HEALTH_PORT", "METRICS_PORT"} {
		if ports[name], err = freePort(); err != nil {
			return err
		}
	}

	caPEM, crtPEM, keyPEM, err := servingCert()
	if err != nil {
		return err
	}
	webhook, err := localWebhook(webhookConfig, ports["WEBHOOK_PORT"], caPEM)
	if err != nil {
		return err
	}

	portsEnv := fmt.Sprintf("WEBHOOK_PORT=%d\nHEALTH_PORT=%d\nMETRICS_PORT=%d\n",
		ports["WEBHOOK_PORT"], ports["HEALTH_PORT"], ports["METRICS_PORT"])
	for path, data := range map[string][]byte{
		"kubeconfig":   kubeconfig,
		"certs/ca.crt": caPEM, "certs/tls.crt": crtPEM, "certs/tls.key": keyPEM,
		"webhook.yaml": webhook,
		"ports.env":    []byte(portsEnv),
	} {
		path = filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "ready"), nil, 0o600)
}

// servingCert makes a CA and a certificate it signs for 127.0.0.1 and
// localhost, all PEM.
func servingCert() (caPEM, crtPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mtlsguard-demo-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "mtlsguard"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// localWebhook is the shipped ValidatingWebhookConfiguration with each
// webhook's Service replaced by https://127.0.0.1:port/<same path> and the CA
// filled in (cert-manager does that in a real cluster).
func localWebhook(path string, port int, caPEM []byte) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var vwc admissionv1.ValidatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(data, &vwc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	delete(vwc.Annotations, "cert-manager.io/inject-ca-from")
	for i, w := range vwc.Webhooks {
		if w.ClientConfig.Service == nil || w.ClientConfig.Service.Path == nil {
			return nil, fmt.Errorf("%s: webhook %s has no service path", path, w.Name)
		}
		url := fmt.Sprintf("https://127.0.0.1:%d%s", port, *w.ClientConfig.Service.Path)
		vwc.Webhooks[i].ClientConfig = admissionv1.WebhookClientConfig{URL: &url, CABundle: caPEM}
	}
	return yaml.Marshal(&vwc)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
