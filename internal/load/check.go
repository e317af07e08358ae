package load

import (
	"encoding/json"
	"fmt"
	"regexp"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/mtlsguard/mtlsguard/policy"
)

// check asks the engine whether it can read obj, so that an error names
// the file and document as well as the object and field; otherwise it
// would surface later, from the engine, without them. A DestinationRule
// without host, which Istio's validation rejects, is an error too: it
// would apply to nothing, silently.
func check(obj runtime.Object) error {
	var s policy.Snapshot
	switch o := obj.(type) {
	case *networkingv1.DestinationRule:
		if o.Spec.GetHost() == "" {
			return fmt.Errorf("DestinationRule %s/%s: spec.host: missing", o.Namespace, o.Name)
		}
		s.DestinationRules = []*networkingv1.DestinationRule{o}
	case *securityv1.PeerAuthentication:
		s.PeerAuthentications = []*securityv1.PeerAuthentication{o}
	case *corev1.ConfigMap:
		// Only the istio ConfigMap of the root namespace counts, and the
		// root namespace is known later; one named istio anywhere is
		// checked, as a broken copy is a mistake wherever it is.
		if o.Name == policy.MeshConfigMapName {
			_, err := policy.DefaultMesh().WithConfigMap(o)
			return err
		}
		return nil
	default:
		return nil
	}
	_, err := policy.NewState(s)
	return err
}

// protoPosition is protobuf's prefix of errors; protobuf writes its space
// as U+0020 or U+00A0 at random, so that nobody compares its messages.
var protoPosition = regexp.MustCompile(`^proto:[\s\x{00a0}]*(\(line \d+:\d+\):[\s\x{00a0}]*)?`)

// unknownSpecFields reports the first field of a DestinationRule's or
// PeerAuthentication's spec that Istio's API does not define. Istio's
// decoder ignores such fields (as newer Istio versions add some), so they
// are a warning, not an error: but a typo such as "hots" must not pass
// unseen.
func unknownSpecFields(obj runtime.Object, js []byte) string {
	kind := ""
	switch obj.(type) {
	case *networkingv1.DestinationRule:
		kind = "DestinationRule"
	case *securityv1.PeerAuthentication:
		kind = "PeerAuthentication"
	}
	if err := strictSpec(kind, js); err != nil {
		return err.Error() + " (ignored)"
	}
	return ""
}

// strictSpec decodes the spec of a DestinationRule or PeerAuthentication
// document with protobuf's own JSON decoder, which, unlike Istio's, names
// the field it stops at ("spec: invalid value for string field host: 7")
// and rejects unknown fields. Other kinds, and documents without a spec,
// are nil.
func strictSpec(kind string, js []byte) error {
	var spec proto.Message
	switch kind {
	case "DestinationRule":
		spec = &networkingapi.DestinationRule{}
	case "PeerAuthentication":
		spec = &securityapi.PeerAuthentication{}
	default:
		return nil
	}
	var doc struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(js, &doc); err != nil || len(doc.Spec) == 0 {
		return nil
	}
	if err := protojson.Unmarshal(doc.Spec, spec); err != nil {
		return fmt.Errorf("spec: %s", protoPosition.ReplaceAllString(err.Error(), ""))
	}
	return nil
}
