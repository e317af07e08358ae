package legacy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"github.com/mtlsguard/mtlsguard/internal/load"
)

// services are what the targets below name: httpbin (port 8000 to target
// 8080, port 9000 with no targetPort, port 9090 to the named target port
// grpc-web, 7070 on its pod) and a Service without a selector.
const services = `apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: foo}
spec:
  selector: {app: httpbin}
  ports:
  - {name: http, port: 8000, targetPort: 8080}
  - {name: admin, port: 9000}
  - {name: grpc, port: 9090, targetPort: grpc-web}
---
apiVersion: v1
kind: Pod
metadata: {name: httpbin-1, namespace: foo, labels: {app: httpbin}}
spec:
  containers:
  - name: httpbin
    ports: [{name: grpc-web, containerPort: 7070}]
---
apiVersion: v1
kind: Service
metadata: {name: external, namespace: foo}
spec:
  ports: [{name: http, port: 80}]
`

func read(t *testing.T, yaml string) load.Result {
	t.Helper()
	var res load.Result
	if err := res.Read("test.yaml", strings.NewReader(yaml)); err != nil {
		t.Fatal(err)
	}
	return res
}

// summary is a converted PeerAuthentication in one line.
func summary(pa *securityv1.PeerAuthentication) string {
	s := pa.Namespace + "/" + pa.Name
	if sel := pa.Spec.GetSelector().GetMatchLabels(); sel != nil {
		s += fmt.Sprintf(" selector=%v", sel)
	}
	if m := pa.Spec.GetMtls(); m != nil {
		s += " mtls=" + m.Mode.String()
	}
	var ports []string
	for p, m := range pa.Spec.GetPortLevelMtls() {
		ports = append(ports, fmt.Sprintf("%d=%s", p, m.Mode))
	}
	slices.Sort(ports)
	if ports != nil {
		s += " ports=" + strings.Join(ports, ",")
	}
	return s
}

func convert(t *testing.T, policies string) (Result, error) {
	t.Helper()
	res := read(t, services+"---\n"+policies)
	return Convert(res.Legacy, res.Objects, "istio-system")
}

func TestConvertFollowsTheMigrationGuidance(t *testing.T) {
	tests := map[string]struct {
		policies string
		want     []string
	}{
		"MeshPolicy default with mtls: {} is a mesh-wide STRICT PeerAuthentication": {
			policies: "apiVersion: authentication.istio.io/v1alpha1\nkind: MeshPolicy\nmetadata: {name: default}\nspec: {peers: [{mtls: {}}]}\n",
			want:     []string{"istio-system/default mtls=STRICT"},
		},
		"mtls: with no value is STRICT too": {
			policies: "apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: default, namespace: foo}\nspec:\n  peers:\n  - mtls:\n",
			want:     []string{"foo/default mtls=STRICT"},
		},
		"mode PERMISSIVE": {
			policies: "apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: default, namespace: foo}\nspec: {peers: [{mtls: {mode: PERMISSIVE}}]}\n",
			want:     []string{"foo/default mtls=PERMISSIVE"},
		},
		"the deprecated allowTls is PERMISSIVE": {
			policies: "apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: default, namespace: foo}\nspec: {peers: [{mtls: {allowTls: true}}]}\n",
			want:     []string{"foo/default mtls=PERMISSIVE"},
		},
		"no peers is plaintext only: DISABLE": {
			policies: "apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: default, namespace: foo}\nspec: {}\n",
			want:     []string{"foo/default mtls=DISABLE"},
		},
		"a target selects the Service's pods": {
			policies: "apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: httpbin-off, namespace: foo}\nspec:\n  targets: [{name: httpbin}]\n",
			want:     []string{"foo/httpbin-off-httpbin selector=map[app:httpbin] mtls=DISABLE"},
		},
		"target ports become portLevelMtls keyed by target port": {
			policies: "apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: p, namespace: foo}\nspec:\n  targets: [{name: httpbin, ports: [{number: 8000}, {name: admin}, {name: grpc}]}]\n  peers: [{mtls: {mode: PERMISSIVE}}]\n",
			want:     []string{"foo/p-httpbin selector=map[app:httpbin] ports=7070=PERMISSIVE,8080=PERMISSIVE,9000=PERMISSIVE"},
		},
		"a jwt peer is skipped, the first mtls peer decides": {
			policies: "apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: default, namespace: foo}\nspec: {peers: [{jwt: {issuer: x}}, {mtls: {mode: PERMISSIVE}}, {mtls: {}}]}\n",
			want:     []string{"foo/default mtls=PERMISSIVE"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := convert(t, tc.policies)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range res.Converted {
				got = append(got, summary(c.PeerAuthentication))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestConvertRejectsBadInputNamingFileDocumentAndField(t *testing.T) {
	tests := map[string]struct {
		policies string
		want     string
	}{
		"unknown mode": {
			"apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: default, namespace: foo}\nspec: {peers: [{mtls: {mode: SOMETIMES}}]}\n",
			`test.yaml: document 4: Policy foo/default: spec.peers[0].mtls.mode: unknown mode "SOMETIMES": v1alpha1 knows STRICT and PERMISSIVE`,
		},
		"a target naming a Service the files lack": {
			"apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: p, namespace: foo}\nspec: {targets: [{name: httpbin}, {name: reviews}]}\n",
			"test.yaml: document 4: Policy foo/p: spec.targets[1].name: Service foo/reviews is not in the files",
		},
		"a target Service without a selector": {
			"apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: p, namespace: foo}\nspec: {targets: [{name: external}]}\n",
			"spec.targets[0].name: Service foo/external has no selector",
		},
		"a port the Service lacks": {
			"apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: p, namespace: foo}\nspec: {targets: [{name: httpbin, ports: [{number: 8080}]}]}\n",
			"spec.targets[0].ports[0]: Service foo/httpbin has no port 8080",
		},
		"a misspelt field": {
			"apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: default, namespace: foo}\nspec: {peer: [{mtls: {}}]}\n",
			`test.yaml: document 4: Policy foo/default: spec: unknown field "peer"`,
		},
		"a MeshPolicy not named default": {
			"apiVersion: authentication.istio.io/v1alpha1\nkind: MeshPolicy\nmetadata: {name: mesh}\nspec: {}\n",
			"MeshPolicy mesh: metadata.name: Istio reads only the MeshPolicy named default",
		},
		"a namespace Policy not named default": {
			"apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: ns-wide, namespace: foo}\nspec: {}\n",
			"Policy foo/ns-wide: metadata.name: a Policy without targets applies to its namespace and must be named default",
		},
		"a Policy in the root namespace": {
			"apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: default, namespace: istio-system}\nspec: {}\n",
			"Policy istio-system/default: metadata.namespace: a Policy in the root namespace istio-system cannot be converted",
		},
		"two policies targeting one Service": {
			"apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: a, namespace: foo}\nspec: {targets: [{name: httpbin}]}\n---\n" +
				"apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: b, namespace: foo}\nspec: {targets: [{name: httpbin, ports: [{number: 8000}]}]}\n",
			"document 5: Policy foo/b: spec.targets[0].name: Service foo/httpbin is also a target of Policy foo/a (test.yaml: document 4)",
		},
		"a version Istio never served": {
			"apiVersion: authentication.istio.io/v1beta1\nkind: Policy\nmetadata: {name: default, namespace: foo}\nspec: {}\n",
			"Policy foo/default: apiVersion authentication.istio.io/v1beta1",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := convert(t, tc.policies)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestConvertNotesWhatItDrops(t *testing.T) {
	res, err := convert(t, "apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: default, namespace: foo}\n"+
		"spec: {peers: [{mtls: {}}], peerIsOptional: true, origins: [{jwt: {issuer: x}}], principalBinding: USE_ORIGIN}\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Notes) != 2 || !strings.Contains(res.Notes[0], "spec.peerIsOptional is not converted") ||
		!strings.Contains(res.Notes[1], "spec.origins") {
		t.Errorf("notes = %q", res.Notes)
	}
}

// TestWriteYAMLReadsBackAsTheSamePeerAuthentications proves the convert
// output is what the table was computed from.
func TestWriteYAMLReadsBackAsTheSamePeerAuthentications(t *testing.T) {
	res, err := convert(t, "apiVersion: authentication.istio.io/v1alpha1\nkind: MeshPolicy\nmetadata: {name: default}\nspec: {peers: [{mtls: {}}]}\n---\n"+
		"apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: {name: p, namespace: foo}\nspec:\n  targets: [{name: httpbin, ports: [{number: 8000}, {name: grpc}]}]\n  peers: [{mtls: {mode: PERMISSIVE}}]\n")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := WriteYAML(&out, res); err != nil {
		t.Fatal(err)
	}
	back := read(t, out.String())
	if len(back.Objects) != len(res.Converted) {
		t.Fatalf("read back %d objects, want %d:\n%s", len(back.Objects), len(res.Converted), out.String())
	}
	for i, o := range back.Objects {
		pa, ok := o.(*securityv1.PeerAuthentication)
		if !ok {
			t.Fatalf("object %d is %T", i, o)
		}
		if got, want := summary(pa), summary(res.Converted[i].PeerAuthentication); got != want {
			t.Errorf("read back %s, want %s", got, want)
		}
		if pa.Annotations[ConvertedFromAnnotation] == "" {
			t.Errorf("%s lost its %s annotation", pa.Name, ConvertedFromAnnotation)
		}
	}
}
