// Package tlscheck is the tls-check command: it loads objects from YAML (or,
// see cluster.go, a live cluster), asks the engine for the table and prints
// it as the removed istioctl authn tls-check did.
package tlscheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

Without -f it reads the cluster of the current kubeconfig.
Without POD it shows the client view of --namespace; -A shows every view.

Flags:
`

type options struct {
	files         []string
	namespace     string
	allNamespaces bool
	output        string
	exitCode      bool
	rootNamespace string
	clusterDomain string
	kubeconfig    string
	context       string
}

// Run executes the command and returns its exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
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
	fs.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "print every client view, with a CLIENT NAMESPACE column")
	fs.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
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
	if o.output != "table" && o.output != "json" {
		fmt.Fprintf(stderr, "tls-check: --output must be table or json, not %q\n", o.output)
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
	snap, err := load.Snapshot(res.Objects, mesh)
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
	rows := policy.Expand(groups)
	if o.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(JSONRows(rows, q.Pod)); err != nil {
			fmt.Fprintf(stderr, "tls-check: %v\n", err)
			return ExitError
		}
	} else if err := policy.WriteTable(stdout, rows, o.allNamespaces && q.Pod == ""); err != nil {
		fmt.Fprintf(stderr, "tls-check: %v\n", err)
		return ExitError
	}
	if o.exitCode {
		for _, r := range rows {
			if r.Status == policy.Conflict {
				return ExitConflict
			}
		}
	}
	return ExitOK
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
// would: name, name.namespace, or a FQDN.
func hostName(st *policy.State, arg, clientNS string) string {
	domain := ".svc." + st.Mesh().ClusterDomain
	switch strings.Count(arg, ".") {
	case 0:
		return arg + "." + clientNS + domain
	case 1:
		return arg + domain
	}
	return arg
}

// JSONRow is one row of -o json.
type JSONRow struct {
	Host            string         `json:"host"`
	Port            int32          `json:"port"`
	Subset          string         `json:"subset"`
	ClientNamespace string         `json:"client_namespace"`
	ClientView      string         `json:"client_view"`
	ClientPod       string         `json:"client_pod"`
	ClientPods      []string       `json:"client_pods"`
	Status          string         `json:"status"`
	Server          string         `json:"server"`
	Client          string         `json:"client"`
	ClientTLS       string         `json:"client_tls"`
	AuthnPolicy     string         `json:"authn_policy"`
	DestinationRule string         `json:"destination_rule"`
	Endpoints       []JSONEndpoint `json:"endpoints"`
}

// JSONEndpoint is one server pod of a JSONRow.
type JSONEndpoint struct {
	Pod         string `json:"pod"`
	TargetPort  int32  `json:"target_port"`
	Sidecar     bool   `json:"sidecar"`
	ServerMode  string `json:"server_mode"`
	AuthnPolicy string `json:"authn_policy"`
	ClientSends string `json:"client_sends"`
	OK          bool   `json:"ok"`
	Reason      string `json:"reason"`
}

// JSONRows renders rows for -o json. clientPod, when set, is the pod the
// user asked about; otherwise each view's first pod stands for it.
func JSONRows(rows []policy.ViewRow, clientPod string) []JSONRow {
	out := make([]JSONRow, 0, len(rows))
	for _, r := range rows {
		jr := JSONRow{
			Host: r.Host, Port: r.Port, Subset: r.Subset,
			ClientNamespace: r.View.Namespace, ClientView: r.View.String(),
			ClientPod: r.View.Pod(), ClientPods: r.View.Pods,
			Status: r.Status.String(), Server: r.Server, Client: r.ClientColumn, ClientTLS: r.Client.String(),
			AuthnPolicy: r.AuthnPolicy, DestinationRule: r.DestinationRule,
			Endpoints: make([]JSONEndpoint, 0, len(r.Endpoints)),
		}
		if clientPod != "" {
			jr.ClientPod = clientPod
		}
		if jr.ClientPods == nil {
			jr.ClientPods = []string{}
		}
		for _, ep := range r.Endpoints {
			jr.Endpoints = append(jr.Endpoints, JSONEndpoint{
				Pod: ep.Pod, TargetPort: ep.TargetPort, Sidecar: ep.Sidecar,
				ServerMode: ep.ServerMode.String(), AuthnPolicy: ep.AuthnPolicy,
				ClientSends: ep.ClientSends.String(), OK: ep.OK, Reason: ep.Reason,
			})
		}
		out = append(out, jr)
	}
	return out
}
