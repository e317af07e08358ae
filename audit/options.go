package audit

import (
	"fmt"

	"github.com/spf13/pflag"
)

// ReportAPI is the API the audit writes its reports with.
type ReportAPI string

const (
	// ReportAuto is OpenReports when its CRD is installed, else none.
	ReportAuto ReportAPI = "auto"
	// OpenReports writes openreports.io/v1alpha1 Reports.
	OpenReports ReportAPI = "openreports"
	// WGPolicy writes wgpolicyk8s.io/v1alpha2 PolicyReports, for clusters
	// whose Policy Reporter or Kyverno still reads that group.
	WGPolicy ReportAPI = "wgpolicyk8s"
	// NoReports writes no reports; metrics and events stay.
	NoReports ReportAPI = "none"
)

// Options configures the audit and the leader election it runs under.
type Options struct {
	// ReportAPI picks the report format. Defaults to ReportAuto.
	ReportAPI ReportAPI
	// LeaderElect runs the audit only in the replica holding the Lease.
	// Without it every replica audits and writes reports. Defaults to true.
	LeaderElect bool
	// LeaderElectionNamespace holds the Lease. Defaults to the namespace
	// mtlsguard runs in (read from its service account); outside a cluster
	// it must be set.
	LeaderElectionNamespace string
}

// DefaultOptions returns the defaults of the mtlsguard command.
func DefaultOptions() Options {
	return Options{ReportAPI: ReportAuto, LeaderElect: true}
}

// AddFlags binds the options to command-line flags, with the values in o
// as defaults.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.Var(&reportAPIFlag{&o.ReportAPI}, "report-api", "where the audit publishes the conflicts that exist: openreports (openreports.io/v1alpha1 Report), wgpolicyk8s (wgpolicyk8s.io/v1alpha2 PolicyReport), none, or auto (openreports when its CRD is installed, else none)")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "run the audit (reports, events) only in the replica holding a Lease; every replica serves admission requests either way")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", o.LeaderElectionNamespace, "namespace of the leader election Lease (default: the namespace mtlsguard runs in; required outside a cluster)")
}

// Validate fills in defaults and rejects invalid options.
func (o *Options) Validate() error {
	if o.ReportAPI == "" {
		o.ReportAPI = ReportAuto
	}
	switch o.ReportAPI {
	case ReportAuto, OpenReports, WGPolicy, NoReports:
		return nil
	}
	return fmt.Errorf("report API %q: must be openreports, wgpolicyk8s, none or auto", o.ReportAPI)
}

type reportAPIFlag struct{ v *ReportAPI }

func (f *reportAPIFlag) String() string {
	if f.v == nil {
		return ""
	}
	return string(*f.v)
}

func (f *reportAPIFlag) Set(s string) error {
	o := Options{ReportAPI: ReportAPI(s)}
	if err := o.Validate(); err != nil {
		return err
	}
	*f.v = o.ReportAPI
	return nil
}

func (f *reportAPIFlag) Type() string { return "openreports|wgpolicyk8s|none|auto" }
