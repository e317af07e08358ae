package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA issues certificates for the server tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM certificate and key for a server (127.0.0.1) or a
// client.
func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// testServer is a webhook server on a free local port whose /echo answers
// with the size of the body it read.
type testServer struct {
	*server
	ca     *testCA
	stop   context.CancelFunc
	done   chan error
	inside chan struct{} // a request reached /slow
	unplug chan struct{} // lets /slow answer
}

func startTestServer(t *testing.T, mutate func(*Options, *testCA)) *testServer {
	t.Helper()
	ca := newTestCA(t, "serving-ca")
	dir := t.TempDir()
	crt, key := ca.issue(t, "mtlsguard", x509.ExtKeyUsageServerAuth)
	for name, b := range map[string][]byte{"tls.crt": crt, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	o := DefaultOptions()
	o.Host, o.Port, o.CertDir = "127.0.0.1", 0, dir
	o.ShutdownDelay = 10 * time.Millisecond
	if mutate != nil {
		mutate(&o, ca)
	}
	drain := make(chan struct{})
	ts := &testServer{server: newServer(o, drain), ca: ca, done: make(chan error, 1),
		inside: make(chan struct{}, 10), unplug: make(chan struct{})}
	ts.Register("/echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write([]byte(strings.Repeat("x", len(b)%7) + "ok"))
	}))
	ts.Register("/slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.inside <- struct{}{}
		<-ts.unplug
		_, _ = w.Write([]byte("finished"))
	}))
	ctx, cancel := context.WithCancel(context.Background())
	ts.stop = func() { close(drain); cancel() }
	go func() { ts.done <- ts.Start(ctx) }()
	t.Cleanup(func() {
		select {
		case <-drain:
		default:
			ts.stop()
		}
		select {
		case <-ts.unplug:
		default:
			close(ts.unplug)
		}
		if err := <-ts.done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for ts.Addr() == nil || ts.StartedChecker()(nil) != nil {
		select {
		case err := <-ts.done:
			t.Fatalf("server stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ts
}

// client trusts the server's CA and presents cert, if any.
func (ts *testServer) client(cert ...tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(ts.ca.cert)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if len(cert) == 0 {
				return &tls.Certificate{}, nil
			}
			return &cert[0], nil // even one the server did not ask for
		}},
		ForceAttemptHTTP2: true, // the server must refuse it all the same
	}}
}

func (ts *testServer) url(path string) string { return "https://" + ts.Addr().String() + path }

func TestServerRefusesTLSBelow12AndHTTP2(t *testing.T) {
	ts := startTestServer(t, nil)
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		conn, err := tls.Dial("tcp", ts.Addr().String(), &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v})
		if err == nil {
			conn.Close()
			t.Errorf("a TLS %s handshake succeeded", tls.VersionName(v))
		}
	}
	conn, err := tls.Dial("tcp", ts.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Errorf("negotiated %q, want http/1.1", p)
	}
	resp, err := ts.client().Post(ts.url("/echo"), "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 1 {
		t.Errorf("served %s", resp.Proto)
	}
}

func TestServerClosesASlowlorisConnectionAtTheHeaderTimeout(t *testing.T) {
	limits := defaultLimits()
	limits.readHeader = 500 * time.Millisecond
	ts := startTestServer(t, func(o *Options, _ *testCA) { o.limits = &limits })
	for _, tc := range []struct {
		name string
		// send is what the client sends before it goes quiet.
		send string
		tls  bool
	}{
		{"headers started, never finished", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n", true},
		{"TLS handshake never started", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := net.Dial("tcp", ts.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			var conn net.Conn = raw
			start := time.Now()
			if tc.tls {
				c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
				if err := c.Handshake(); err != nil {
					t.Fatal(err)
				}
				if _, err := io.WriteString(c, tc.send); err != nil {
					t.Fatal(err)
				}
				conn = c
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			b, err := io.ReadAll(conn)
			took := time.Since(start)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server kept the connection open for %v", took)
			}
			if took < limits.readHeader/2 || took > limits.readHeader+3*time.Second {
				t.Errorf("closed after %v, want about %v (read %q, %v)", took, limits.readHeader, b, err)
			}
			t.Logf("closed after %v", took.Round(time.Millisecond))
		})
	}
}

func TestServerRefusesAnOversizedBody(t *testing.T) {
	ts := startTestServer(t, nil)
	c := ts.client()
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool // no Content-Length: the limit is found while reading
		want    int
	}{
		{"at the limit", MaxRequestBytes, false, http.StatusOK},
		{"one byte over, Content-Length", MaxRequestBytes + 1, false, http.StatusRequestEntityTooLarge},
		{"one byte over, chunked", MaxRequestBytes + 1, true, http.StatusRequestEntityTooLarge},
		{"64 MiB, chunked", 64 << 20, true, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(make([]byte, tc.size))
			if tc.chunked {
				body = io.MultiReader(body) // hides the size from net/http
			}
			req, err := http.NewRequest(http.MethodPost, ts.url("/echo"), body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(req)
			if err != nil {
				if tc.want == http.StatusRequestEntityTooLarge && tc.size > MaxRequestBytes*2 {
					// The server may close while a large upload is still
					// being written; it must not have read it all.
					t.Logf("upload cut off: %v", err)
					return
				}
				t.Fatal(err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d (%s), want %d", resp.StatusCode, msg, tc.want)
			}
			if tc.want == http.StatusRequestEntityTooLarge && !strings.Contains(string(msg), "larger than 4194304 bytes") {
				t.Errorf("message %q does not give the limit", msg)
			}
		})
	}
}

func TestServerRequiresAClientCertificateFromTheClientCA(t *testing.T) {
	apiServerCA := newTestCA(t, "api-server-client-ca")
	ts := startTestServer(t, func(o *Options, _ *testCA) {
		f := filepath.Join(t.TempDir(), "client-ca.pem")
		if err := os.WriteFile(f, apiServerCA.pem, 0o600); err != nil {
			t.Fatal(err)
		}
		o.ClientCAFile = f
	})
	pair := func(ca *testCA) tls.Certificate {
		crt, key := ca.issue(t, "kube-apiserver", x509.ExtKeyUsageClientAuth)
		c, err := tls.X509KeyPair(crt, key)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		ok    bool
	}{
		{"no client certificate", nil, false},
		{"a certificate of another CA", []tls.Certificate{pair(newTestCA(t, "other"))}, false},
		{"the API server's certificate", []tls.Certificate{pair(apiServerCA)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := ts.client(tc.certs...).Post(ts.url("/echo"), "application/json", strings.NewReader("{}"))
			if err == nil {
				resp.Body.Close()
			}
			switch {
			case tc.ok && err != nil:
				t.Errorf("refused: %v", err)
			case !tc.ok && err == nil:
				t.Errorf("served: %s", resp.Status)
			case !tc.ok:
				t.Logf("refused: %v", err)
			}
		})
	}
}

func TestServerDrainsBeforeItStops(t *testing.T) {
	ts := startTestServer(t, func(o *Options, _ *testCA) { o.ShutdownDelay = 700 * time.Millisecond })
	answer := make(chan string, 1)
	go func() {
		resp, err := ts.client().Post(ts.url("/slow"), "application/json", strings.NewReader("{}"))
		if err != nil {
			answer <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer <- string(b)
	}()
	<-ts.inside
	stopped := time.Now()
	ts.stop()
	deadline := time.Now().Add(5 * time.Second)
	for ts.StartedChecker()(nil) == nil {
		if time.Now().After(deadline) {
			t.Fatal("still ready after the stop")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Still serving during the delay: a new request is answered.
	resp, err := ts.client().Post(ts.url("/echo"), "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("a request during the shutdown delay: %v", err)
	}
	resp.Body.Close()
	time.Sleep(time.Second) // past the delay: the server waits for /slow
	select {
	case err := <-ts.done:
		t.Fatalf("stopped with a request in flight: %v", err)
	default:
	}
	close(ts.unplug)
	if got := <-answer; got != "finished" {
		t.Errorf("the request in flight got %q", got)
	}
	if err := <-ts.done; err != nil {
		t.Error(err)
	}
	ts.done <- nil // for the cleanup
	t.Logf("stopped %v after the signal", time.Since(stopped).Round(time.Millisecond))
	if _, err := net.DialTimeout("tcp", ts.Addr().String(), time.Second); err == nil {
		t.Error("still accepting connections after it stopped")
	}
}
