// Package load reads the Kubernetes YAML that tls-check and the tests feed
// the engine: multi-document files holding Namespaces, Services, Pods,
// PeerAuthentications (security.istio.io v1, v1beta1), DestinationRules,
// ServiceEntries, WorkloadEntries and Sidecars (networking.istio.io v1,
// v1beta1, v1alpha3), the mesh ConfigMap and List
// objects of those. Every error names the source, the document and the
// object; kinds the engine does not read are reported, not fatal.
// authentication.istio.io documents are kept as JSON for internal/legacy.
package load

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	mtlsscheme "github.com/mtlsguard/mtlsguard/internal/scheme"
	"github.com/mtlsguard/mtlsguard/policy"
)

// Result is what a set of documents holds.
type Result struct {
	Objects []runtime.Object
	// Skipped names documents of kinds the engine does not read.
	Skipped []string
	// Legacy holds the authentication.istio.io documents (v1alpha1
	// MeshPolicy and Policy), which internal/legacy converts.
	Legacy []Document
	// Warnings name fields that were ignored: fields of DestinationRule and
	// PeerAuthentication specs that this version of Istio's API does not
	// define (a typo, or a field of a newer Istio).
	Warnings []string
}

// Document is one document as JSON, with where it was read and what it
// says it is.
type Document struct {
	Where string // "<source>: document <n>"
	Kind  string
	JSON  []byte
}

// legacyGroup holds the v1alpha1 authentication API that Istio 1.6 removed.
const legacyGroup = "authentication.istio.io"

var scheme = mtlsscheme.New()

// Scheme knows every type the loader decodes.
func Scheme() *runtime.Scheme { return scheme }

var decoder = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

// Paths reads files, directories (their *.yaml, *.yml and *.json files, not
// recursing) and "-" for stdin.
func Paths(paths []string, stdin io.Reader) (Result, error) {
	var out Result
	for _, p := range paths {
		if p == "-" {
			if err := out.Read("<stdin>", stdin); err != nil {
				return out, err
			}
			continue
		}
		files, err := expand(p)
		if err != nil {
			return out, err
		}
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				return out, fmt.Errorf("read %s: %w", f, err)
			}
			err = out.Read(f, fh)
			fh.Close()
			if err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

func expand(p string) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	var out []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".yaml", ".yml", ".json":
			if !e.IsDir() {
				out = append(out, filepath.Join(p, e.Name()))
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Read decodes every document of r; source names r in errors.
func (res *Result) Read(source string, r io.Reader) error {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for doc := 1; ; doc++ {
		raw, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", source, doc, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		if err := res.decode(fmt.Sprintf("%s: document %d", source, doc), raw); err != nil {
			return err
		}
	}
}

func stripComments(raw []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("---")) {
			b.Write(line)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func (res *Result) decode(where string, raw []byte) error {
	// One YAML parse per document: the rest reads the JSON, which is much
	// cheaper (50,000 pods are a million lines of YAML).
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if what := notAnObject(js); what != "" {
		return fmt.Errorf("%s: not a Kubernetes object but %s", where, what)
	}
	var meta struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Items []runtime.RawExtension `json:"items"`
	}
	if err := json.Unmarshal(js, &meta); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	gvk := schema.FromAPIVersionAndKind(meta.APIVersion, meta.Kind)
	if meta.Kind == "" {
		return fmt.Errorf("%s: object has no kind", where)
	}
	if gvk.Group == "" && strings.HasSuffix(meta.Kind, "List") {
		for i, item := range meta.Items {
			if err := res.decode(fmt.Sprintf("%s: items[%d]", where, i), item.Raw); err != nil {
				return err
			}
		}
		return nil
	}
	name := meta.Kind + " " + meta.Metadata.Name
	if meta.Metadata.Namespace != "" {
		name = meta.Kind + " " + meta.Metadata.Namespace + "/" + meta.Metadata.Name
	}
	if gvk.Group == legacyGroup {
		res.Legacy = append(res.Legacy, Document{Where: where, Kind: meta.Kind, JSON: js})
		return nil
	}
	if !wanted(gvk) {
		res.Skipped = append(res.Skipped, fmt.Sprintf("%s: %s (%s) is not read by tls-check", where, name, meta.APIVersion))
		return nil
	}
	if meta.Metadata.Name == "" {
		return fmt.Errorf("%s: %s: metadata.name: missing", where, meta.Kind)
	}
	obj, _, err := decoder.Decode(js, nil, nil)
	if runtime.IsNotRegisteredError(err) {
		return fmt.Errorf("%s: %s: apiVersion %s: not a version tls-check reads (%s)", where, name, meta.APIVersion, servedVersions(gvk.GroupKind()))
	}
	if err != nil {
		return fmt.Errorf("%s: %s: %w", where, name, DescribeDecodeError(meta.Kind, err, js))
	}
	obj, err = Normalize(obj)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", where, name, err)
	}
	if mo, ok := obj.(metav1.Object); ok && mo.GetNamespace() == "" && meta.Kind != "Namespace" {
		mo.SetNamespace("default")
	}
	if err := check(obj); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if w := unknownSpecFields(obj, js); w != "" {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s: %s: %s", where, name, w))
	}
	res.Objects = append(res.Objects, obj)
	return nil
}

// notAnObject describes a document that is not a JSON object ("a list",
// "a string", ...), or returns "" for an object.
func notAnObject(js []byte) string {
	t := bytes.TrimSpace(js)
	if len(t) == 0 {
		return "an empty document"
	}
	switch t[0] {
	case '{':
		return ""
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

// servedVersions lists the versions of a kind the scheme knows.
func servedVersions(gk schema.GroupKind) string {
	var out []string
	for gvk := range scheme.AllKnownTypes() {
		if gvk.GroupKind() == gk {
			out = append(out, gvk.GroupVersion().String())
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

func wanted(gvk schema.GroupVersionKind) bool {
	switch gvk.Group {
	case "":
		return gvk.Version == "v1" && (gvk.Kind == "Namespace" || gvk.Kind == "Service" || gvk.Kind == "Pod" || gvk.Kind == "ConfigMap")
	case "security.istio.io":
		return gvk.Kind == "PeerAuthentication"
	case "networking.istio.io":
		switch gvk.Kind {
		case "DestinationRule", "ServiceEntry", "WorkloadEntry", "Sidecar":
			return true
		}
		return false
	}
	return false
}

// Normalize converts any served version of a DestinationRule or
// PeerAuthentication to the v1 type the engine reads; every version shares
// one schema. Other objects are returned as they are.
func Normalize(obj runtime.Object) (runtime.Object, error) {
	switch o := obj.(type) {
	case *unstructured.Unstructured:
		typed, err := scheme.New(o.GroupVersionKind())
		if err != nil {
			return nil, err
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, typed); err != nil {
			return nil, err
		}
		return Normalize(typed)
	}
	return policy.Normalize(obj)
}

// State is the engine's state of objects: Snapshot, then policy.NewState.
func State(objs []runtime.Object, mesh policy.Mesh) (*policy.State, error) {
	snap, err := Snapshot(objs, mesh)
	if err != nil {
		return nil, fmt.Errorf("mesh settings: %w", err)
	}
	return policy.NewState(snap)
}

// Snapshot builds the engine's input from objects; the mesh ConfigMap (name
// istio in the root namespace) overrides mesh.
func Snapshot(objs []runtime.Object, mesh policy.Mesh) (policy.Snapshot, error) {
	s := policy.Snapshot{Mesh: mesh}
	for _, obj := range objs {
		if cm, ok := obj.(*corev1.ConfigMap); ok && cm.Name == policy.MeshConfigMapName && cm.Namespace == mesh.RootNamespace {
			m, err := s.Mesh.WithConfigMap(cm)
			if err != nil {
				return s, err
			}
			s.Mesh = m
		}
	}
	for _, obj := range objs {
		switch o := obj.(type) {
		case *corev1.Namespace:
			s.Namespaces = append(s.Namespaces, o)
		case *corev1.Service:
			s.Services = append(s.Services, o)
		case *corev1.Pod:
			s.Pods = append(s.Pods, o)
		case *securityv1.PeerAuthentication:
			s.PeerAuthentications = append(s.PeerAuthentications, o)
		case *networkingv1.DestinationRule:
			s.DestinationRules = append(s.DestinationRules, o)
		case *networkingv1.ServiceEntry:
			s.ServiceEntries = append(s.ServiceEntries, o)
		case *networkingv1.WorkloadEntry:
			s.WorkloadEntries = append(s.WorkloadEntries, o)
		case *networkingv1.Sidecar:
			s.Sidecars = append(s.Sidecars, o)
		}
	}
	return s, nil
}
