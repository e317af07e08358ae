// Command tls-check prints the server/client mutual-TLS table of an Istio
// mesh, from YAML files or a live cluster, like the removed
// istioctl authn tls-check.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/mtlsguard/mtlsguard/internal/tlscheck"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := tlscheck.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
