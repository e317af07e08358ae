package webhook

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Results, the result label of mtlsguard_decisions_total.
const (
	resultAllowed         = "allowed"          // no new conflict, mode off, or nothing to check
	resultWarned          = "warned"           // new conflicts, admitted in audit mode
	resultDenied          = "denied"           // new conflicts, denied in enforce mode
	resultInvalid         = "invalid"          // the object could not be read
	resultError           = "error"            // the engine failed
	resultUnsyncedAllowed = "unsynced_allowed" // cache not synced, --unsynced=allow
	resultUnsyncedDenied  = "unsynced_denied"  // cache not synced, --unsynced=deny
	resultTimeout         = "timeout"          // not decided by --decision-timeout; answered per --on-timeout
)

// modeNone is the mode label of a request answered before its mode was
// known (unsynced cache, a request for another kind).
const modeNone = "none"

var (
	decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mtlsguard_decisions_total",
		Help: "Admission decisions on DestinationRule and PeerAuthentication writes.",
	}, []string{"kind", "operation", "mode", "dry_run", "result"})

	decisionDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "mtlsguard_decision_duration_seconds",
		Help: "Time to answer an admission request, from decoding to response.",
		// 0.5ms to 4s: a service-level rule takes well under a millisecond,
		// a mesh-wide change in a large cluster can take seconds.
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"kind", "operation", "reach"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(decisions, decisionDuration)
}

// reachNone is the reach label of a request answered before its object
// was read.
const reachNone = "none"

func observe(kind, operation, mode string, dryRun bool, result, reach string, d time.Duration) {
	decisions.WithLabelValues(kind, operation, mode, strconv.FormatBool(dryRun), result).Inc()
	decisionDuration.WithLabelValues(kind, operation, reach).Observe(d.Seconds())
}
