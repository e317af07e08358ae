// Command mtlsguard is the validating admission webhook that denies (or, in
// audit mode, warns about) DestinationRule and PeerAuthentication writes
// that would create a new mutual-TLS conflict. See package webhook.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager/signals"

	"github.com/mtlsguard/mtlsguard/webhook"
)

const usage = `mtlsguard is a validating admission webhook for Istio DestinationRules and
PeerAuthentications: it denies (enforce) or warns about (audit) writes that
would create a new mutual-TLS conflict.

Usage:
  mtlsguard [flags]

Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	o := webhook.DefaultOptions()
	fs := pflag.NewFlagSet("mtlsguard", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	o.AddFlags(fs)
	fs.AddGoFlag(flag.CommandLine.Lookup(config.KubeconfigFlagName)) // --kubeconfig, controller-runtime's
	var zo zap.Options
	zfs := flag.NewFlagSet("zap", flag.ContinueOnError)
	zo.BindFlags(zfs) // --zap-log-level and friends
	fs.AddGoFlagSet(zfs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "mtlsguard: %v\nRun mtlsguard --help for the flags.\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mtlsguard: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintf(stderr, "mtlsguard: %v\n", err)
		return 2
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zo)))
	cfg, err := config.GetConfig()
	if err == nil {
		err = webhook.Run(signals.SetupSignalHandler(), cfg, o)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mtlsguard: %v\n", err)
		return 1
	}
	return 0
}
