package webhook

// The webhook's HTTPS server. controller-runtime's own server cannot be told
// its timeouts (32 s to send the headers, 90 s idle) or a client CA outside
// its certificate directory, and it stops serving the moment the manager
// stops. This one keeps controller-runtime's server for registration and
// its request metrics, and serves its mux itself.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// MaxRequestBytes is the largest AdmissionReview the server reads. An
// object the API server stores is at most 1.5 MiB (etcd's default request
// limit; custom resources are stored as JSON), and an UPDATE's review
// carries two of them, object and oldObject; the rest is a small envelope.
// A larger body is refused with 413 before it is read.
const MaxRequestBytes = 4 << 20

// serverLimits bounds what one connection may cost the server.
type serverLimits struct {
	// readHeader is the time from accepting a connection to the end of a
	// request's headers, TLS handshake included: a slowloris client that
	// trickles its headers is cut off then.
	readHeader time.Duration
	// read is the time to read a whole request, body included.
	read time.Duration
	// write is the time from the end of the request headers to the end of
	// the response; well above the API server's longest webhook timeout
	// (30 s), which the decision timeout stays below.
	write time.Duration
	// idle is how long a keep-alive connection may wait for its next
	// request. The API server's client drops idle connections after 90 s;
	// a server that waited less could close one just as the API server
	// sends a request on it.
	idle time.Duration
	// maxHeader is the most header bytes a request may send.
	maxHeader int
	// maxBody is the largest request body.
	maxBody int64
}

func defaultLimits() serverLimits {
	return serverLimits{
		readHeader: 10 * time.Second,
		read:       30 * time.Second,
		write:      40 * time.Second,
		idle:       120 * time.Second,
		maxHeader:  64 << 10,
		maxBody:    MaxRequestBytes,
	}
}

// server is the webhook's HTTPS server; see the file comment.
type server struct {
	// Server registers the webhooks on its mux, with controller-runtime's
	// request metrics around each; it is never started.
	ctrlwebhook.Server
	host         string
	port         int
	certDir      string
	clientCAFile string
	limits       serverLimits
	// drain, when set, is closed when the process begins to stop: the
	// server then reports unready and keeps serving for shutdownDelay, so
	// the API server stops sending before it closes.
	drain         <-chan struct{}
	shutdownDelay time.Duration

	started  atomic.Bool
	draining atomic.Bool
	addr     atomic.Pointer[net.Addr]
}

var _ ctrlwebhook.Server = &server{}

func newServer(o Options, drain <-chan struct{}) *server {
	limits := defaultLimits()
	if o.limits != nil {
		limits = *o.limits
	}
	return &server{
		Server:        ctrlwebhook.NewServer(ctrlwebhook.Options{Host: o.Host, Port: o.Port}),
		host:          o.Host,
		port:          o.Port,
		certDir:       o.CertDir,
		clientCAFile:  o.ClientCAFile,
		limits:        limits,
		drain:         drain,
		shutdownDelay: o.ShutdownDelay,
	}
}

// tlsConfig is TLS 1.2 or later with Go's default cipher suites (only
// AEAD suites with forward secrecy), HTTP/1.1 only, the serving certificate
// reloaded from certDir when it changes, and, with a client CA file, a
// client certificate required.
func (s *server) tlsConfig(ctx context.Context) (*tls.Config, error) {
	dir := s.certDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs")
	}
	w, err := certwatcher.New(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		return nil, fmt.Errorf("serving certificate in %s: %w", dir, err)
	}
	go func() {
		if err := w.Start(ctx); err != nil {
			logf.Log.WithName("webhook-server").Error(err, "certificate watcher stopped")
		}
	}()
	cfg := &tls.Config{GetCertificate: w.GetCertificate}
	secureTLS(cfg)
	if s.clientCAFile != "" {
		pem, err := os.ReadFile(s.clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s: no PEM certificate in it", s.clientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Start serves until ctx is done, then lets the requests in flight finish.
func (s *server) Start(ctx context.Context) error {
	logger := logf.Log.WithName("webhook-server")
	cfg, err := s.tlsConfig(ctx)
	if err != nil {
		return err
	}
	l, err := tls.Listen("tcp", net.JoinHostPort(s.host, strconv.Itoa(s.port)), cfg)
	if err != nil {
		return fmt.Errorf("webhook server: %w", err)
	}
	addr := l.Addr()
	s.addr.Store(&addr)
	srv := &http.Server{
		Handler:           limitBody(s.WebhookMux(), s.limits.maxBody),
		ReadHeaderTimeout: s.limits.readHeader,
		ReadTimeout:       s.limits.read,
		WriteTimeout:      s.limits.write,
		IdleTimeout:       s.limits.idle,
		MaxHeaderBytes:    s.limits.maxHeader,
		// No HTTP/2, even if a TLS option asked for it (secureTLS).
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		BaseContext:  func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		// Handshake failures and timeouts of clients, not of the server.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	stopped := make(chan error, 1)
	go func() {
		select {
		case <-ctx.Done():
		case <-s.drainSignal():
		}
		s.draining.Store(true)
		began := time.Now()
		logger.Info("draining: unready from now, serving on", "for", s.shutdownDelay)
		<-ctx.Done()
		time.Sleep(s.shutdownDelay - time.Since(began))
		// The manager gives its runnables its graceful shutdown timeout
		// (30 s) in total; a request takes at most the decision timeout.
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		stopped <- srv.Shutdown(sctx)
	}()
	s.started.Store(true)
	logger.Info("serving webhooks", "address", addr.String(), "clientCertificates", s.clientCAFile != "")
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("webhook server: %w", err)
	}
	if err := <-stopped; err != nil {
		return fmt.Errorf("webhook server shutdown: %w", err)
	}
	return nil
}

func (s *server) drainSignal() <-chan struct{} {
	if s.drain == nil {
		return nil // never
	}
	return s.drain
}

// StartedChecker is ready while the server serves and is not draining.
func (s *server) StartedChecker() healthz.Checker {
	return func(*http.Request) error {
		switch {
		case s.draining.Load():
			return errors.New("webhook server is shutting down")
		case !s.started.Load():
			return errors.New("webhook server has not started")
		}
		return nil
	}
}

// Addr is the address the server listens on, once it has started.
func (s *server) Addr() net.Addr {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return nil
}

// limitBody refuses a request whose body is larger than max with 413
// Request Entity Too Large, without reading more than max+1 bytes of it.
// The API server applies the webhook's failurePolicy to such an answer;
// no AdmissionReview of that size comes from it.
func limitBody(next http.Handler, max int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			tooLarge(w, r.ContentLength, max)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
			if err != nil {
				http.Error(w, "mtlsguard: reading the request body: "+err.Error(), http.StatusBadRequest)
				return
			}
			if int64(len(body)) > max {
				tooLarge(w, -1, max)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

func tooLarge(w http.ResponseWriter, size, max int64) {
	msg := fmt.Sprintf("mtlsguard: request body larger than %d bytes", max)
	if size > 0 {
		msg = fmt.Sprintf("mtlsguard: request body of %d bytes is larger than %d bytes", size, max)
	}
	// Do not read the rest: close the connection after the answer.
	w.Header().Set("Connection", "close")
	http.Error(w, msg, http.StatusRequestEntityTooLarge)
}
