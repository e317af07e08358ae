// Package tlscheck is the tls-check command: it loads objects from YAML (or,
// see cluster.go, a live cluster), asks the engine for the table and prints
// it as the removed istioctl authn tls-check did.
package tlscheck

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mtlsguard/mtlsguard/internal/load"
	"github.com/mtlsguard/mtlsguard/policy"
)

// Exit codes.
const (
	ExitOK       = 0
	ExitError    = 1 // the cluster could not be read
	ExitUsage    = 2 // bad flags or bad input
	ExitConflict = 3 // --exit-code and a CONFLICT row
)

const usage = `tls-check prints, for each service port a client sees, whether the server's
PeerAuthentication mode and the client's DestinationRule TLS agree.

Usage:
  tls-check [-f PATH]... [POD[.NAMESPACE]] [HOST] [flags]
  tls-check convert -f PATH... [flags]

Without -f it reads the cluster of the current kubeconfig. Files may hold
the authentication.istio.io/v1alpha1 MeshPolicy and Policy of Istio 1.5 and
earlier: they are converted to PeerAuthentications (see tls-check convert
--help) and the table names them as written (the MeshPolicy as default/).
Without POD it shows the client view of --namespace; -A shows every view,
grouped: one row per service port and verdict with the client namespaces
that see it (--per-view: one row per view).

Flags:
`

type options struct {
	files         []string
	namespace     string
	allNamespaces bool
	perView       bool
	conflictsOnly bool
	output        string
	exitCode      bool
	rootNamespace string
	clusterDomain string
	kubeconfig    string
	context       string
	// legacyRefs names converted v1alpha1 policies (legacy.go).
	legacyRefs map[string]string
}

// Run executes the command and returns its exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "convert" {
		return runConvert(args[1:], stdin, stdout, stderr)
	}
	var o options
	fs := pflag.NewFlagSet("tls-check", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	help := func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringArrayVarP(&o.files, "filename", "f", nil, "YAML file, directory or - for stdin (repeatable); without it the live cluster is read")
	fs.StringVarP(&o.namespace, "namespace", "n", "default", "client namespace when no POD is given, and the default namespace of POD")
	fs.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "print every client view: one row per service port and verdict, with the CLIENT NAMESPACES that see it")
	fs.BoolVar(&o.perView, "per-view", false, "with -A, print one row per client view, with a CLIENT NAMESPACE column")
	fs.BoolVar(&o.conflictsOnly, "conflicts-only", false, "print only CONFLICT rows")
	fs.StringVarP(&o.output, "output", "o", "table", "output format: table, json, or html (one self-contained page with a namespace matrix)")
	fs.BoolVar(&o.exitCode, "exit-code", false, "exit with code 3 when any row is CONFLICT")
	fs.StringVar(&o.rootNamespace, "root-namespace", "istio-system", "Istio's root namespace, unless the istio ConfigMap says otherwise")
	fs.StringVar(&o.clusterDomain, "cluster-domain", "cluster.local", "DNS domain of services")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file for the live cluster (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&o.context, "context", "", "kubeconfig context for the live cluster")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			help()
			return ExitOK
		}
		fmt.Fprintf(stderr, "tls-check: %v\nRun 'tls-check --help' for usage.\n", err)
		return ExitUsage
	}
	if o.output != "table" && o.output != "json" && o.output != "html" {
		fmt.Fprintf(stderr, "tls-check: --output must be table, json or html, not %q\n", o.output)
		return ExitUsage
	}
	if o.perView && (!o.allNamespaces || o.output == "html") {
		fmt.Fprintf(stderr, "tls-check: --per-view needs -A and a table or json output\n")
		return ExitUsage
	}
	pos := fs.Args()
	if len(pos) > 2 {
		fmt.Fprintf(stderr, "tls-check: at most POD and HOST, got %d arguments\n", len(pos))
		return ExitUsage
	}

	mesh := policy.DefaultMesh()
	mesh.RootNamespace, mesh.ClusterDomain = o.rootNamespace, o.clusterDomain
	var res load.Result
	var err error
	if len(o.files) > 0 {
		res, err = load.Paths(o.files, stdin)
		if err != nil {
			fmt.Fprintf(stderr, "tls-check: %v\n", err)
			return ExitUsage
		}
	} else {
		res, err = readCluster(ctx, o.kubeconfig, o.context, mesh.RootNamespace)
		if err != nil {
			fmt.Fprintf(stderr, "tls-check: %v\n", err)
			return ExitError
		}
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(stderr, "tls-check: skipped %s\n", s)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "tls-check: warning: %s\n", w)
	}
	snap, err := load.Snapshot(res.Objects, mesh)
	if err == nil {
		snap, o.legacyRefs, err = withLegacy(snap, res, stderr)
	}
	if err == nil {
		var st *policy.State
		if st, err = policy.NewState(snap); err == nil {
			return o.print(st, pos, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "tls-check: %v\n", err)
	return ExitUsage
}

func (o options) print(st *policy.State, pos []string, stdout, stderr io.Writer) int {
	q := policy.Query{Namespace: o.namespace}
	if o.allNamespaces {
		q.Namespace = ""
	}
	if len(pos) > 0 {
		q.Pod = podKey(st, pos[0], o.namespace)
		q.Namespace = ""
	}
	if len(pos) > 1 {
		clientNS, _, _ := strings.Cut(q.Pod, "/")
		q.Host = hostName(st, pos[1], clientNS)
	}
	groups, err := st.Table(q)
	if err != nil {
		fmt.Fprintf(stderr, "tls-check: %v\n", err)
		return ExitUsage
	}
	renameAuthn(groups, o.legacyRefs)
	r := &report{groups: groups, clientPod: q.Pod, keep: func(*policy.Row) bool { return true }}
	if o.conflictsOnly {
		r.keep = func(row *policy.Row) bool { return row.Status == policy.Conflict }
	}
	// Output is buffered, not held: the writer passes on every 64 KiB.
	w := bufio.NewWriterSize(stdout, 64<<10)
	allViews := o.allNamespaces && q.Pod == ""
	switch {
	case o.output == "html":
		err = r.html(w)
	case o.output == "json" && allViews && !o.perView:
		err = r.groupedJSON(w)
	case o.output == "json":
		err = r.perViewJSON(w)
	case allViews && !o.perView:
		err = r.groupedTable(w)
	default:
		err = r.perViewTable(w, allViews)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		fmt.Fprintf(stderr, "tls-check: write the output: %v\n", err)
		return ExitError
	}
	if o.exitCode && slices.ContainsFunc(groups, func(g policy.Group) bool { return g.Row.Status == policy.Conflict }) {
		return ExitConflict
	}
	return ExitOK
}

// report is the groups of one Table and how to print them.
type report struct {
	groups []policy.Group
	// keep selects the rows to print (--conflicts-only).
	keep func(*policy.Row) bool
	// clientPod is the pod the user asked about, if any.
	clientPod string
}

// podKey resolves POD[.NAMESPACE]: an exact pod name, or the name of the
// workload that owns pods named POD-<suffix>.
func podKey(st *policy.State, arg, defaultNS string) string {
	if i := strings.LastIndex(arg, "."); i > 0 {
		if key, ok := st.FindPod(arg[i+1:], arg[:i]); ok {
			return key
		}
	}
	if key, ok := st.FindPod(defaultNS, arg); ok {
		return key
	}
	if i := strings.LastIndex(arg, "."); i > 0 {
		return arg[i+1:] + "/" + arg[:i]
	}
	return defaultNS + "/" + arg
}

// hostName resolves a short service name the way a client in clientNS
// would: name, name.namespace, or a FQDN; a host a ServiceEntry defines
// (vm.internal) is taken as it is.
func hostName(st *policy.State, arg, clientNS string) string {
	if strings.Contains(arg, ".") && st.HasHost(arg) {
		return arg
	}
	domain := ".svc." + st.Mesh().ClusterDomain
	switch strings.Count(arg, ".") {
	case 0:
		return arg + "." + clientNS + domain
	case 1:
		return arg + domain
	}
	return arg
}
