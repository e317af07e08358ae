package oracle

import (
	istiolog "istio.io/istio/pkg/log"
)

// ConfigureLogging sends Istio's logs to stderr (stdout carries the JSON answer)
// and, unless verbose, only keeps errors.
func ConfigureLogging(verbose bool) error {
	o := istiolog.DefaultOptions()
	o.OutputPaths = []string{"stderr"}
	o.ErrorOutputPaths = []string{"stderr"}
	if !verbose {
		o.SetDefaultOutputLevel(istiolog.OverrideScopeName, istiolog.ErrorLevel)
	}
	if err := istiolog.Configure(o); err != nil {
		return err
	}
	if !verbose {
		// The default scope only carries noise here (e.g. the fake CRDs lacking a
		// gateway-api bundle-version annotation).
		// krt reports "sync failed" for collections whose stop channel closes when a
		// scenario's fake control plane is torn down.
		for _, name := range []string{istiolog.DefaultScopeName, "krt"} {
			if s := istiolog.FindScope(name); s != nil {
				s.SetOutputLevel(istiolog.NoneLevel)
			}
		}
	}
	return nil
}
