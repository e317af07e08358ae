package load

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Istio's decoder says only `unknown value "\"X\"" for enum
// istio.networking.v1alpha3.ClientTLSSettings.TLSmode`: neither the field
// nor that a newer Istio may define the value.
var unknownEnum = regexp.MustCompile(`unknown value "\\"([^"\\]*)\\"" for enum ([\w.]+)`)

// enumFields names the enums of the fields the engine reads.
var enumFields = map[string]string{
	"istio.networking.v1alpha3.ClientTLSSettings.TLSmode":                           "TLS mode",
	"istio.security.v1beta1.PeerAuthentication.MutualTLS.Mode":                      "mTLS mode",
	"istio.networking.v1alpha3.LoadBalancerSettings.SimpleLB":                       "load balancer",
	"istio.networking.v1alpha3.ConnectionPoolSettings.HTTPSettings.H2UpgradePolicy": "h2 upgrade policy",
}

// DescribeDecodeError rewrites the error of decoding js, an object of kind,
// so that it names the field. Istio's decoder names neither the field of an
// enum value it does not know nor the field of a value of the wrong type:
// the first becomes "spec.trafficPolicy.tls.mode: unknown TLS mode
// "OPTIONAL_MUTUAL" (a typo, or a value of a newer Istio than this version
// reads)", the second protobuf's own message ("spec: invalid value for
// string field host: 7"). Other errors are returned as they are.
func DescribeDecodeError(kind string, err error, js []byte) error {
	if described := describeEnum(err, js); described != nil {
		return described
	}
	// An unknown field did not fail Istio's decoder: the error is elsewhere.
	if strict := strictSpec(kind, js); strict != nil && !strings.Contains(strict.Error(), "unknown field") {
		return strict
	}
	return err
}

func describeEnum(err error, js []byte) error {
	m := unknownEnum.FindStringSubmatch(err.Error())
	if m == nil {
		return nil
	}
	value, what := m[1], enumFields[m[2]]
	if what == "" {
		what = "value of " + m[2]
	}
	var doc any
	path := "a field"
	if json.Unmarshal(js, &doc) == nil {
		if p := findString(doc, value, ""); p != "" {
			path = p
		}
	}
	return fmt.Errorf("%s: unknown %s %q (a typo, or a value of a newer Istio than this version reads)", path, what, value)
}

// findString returns the path of the first string leaf equal to value,
// in key order, or "".
func findString(v any, value, path string) string {
	switch v := v.(type) {
	case string:
		if v == value {
			return path
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if found := findString(v[k], value, p); found != "" {
				return found
			}
		}
	case []any:
		for i, e := range v {
			if found := findString(e, value, path+"["+strconv.Itoa(i)+"]"); found != "" {
				return found
			}
		}
	}
	return ""
}
