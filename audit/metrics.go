package audit

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// conflictsGauge has one series per namespace holding a conflicting
	// service, so at most one per namespace of the cluster; namespaces
	// without conflicts have none.
	conflictsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mtlsguard_conflicts",
		Help: "mTLS conflicts the audit reports, by namespace of the service (leader only).",
	}, []string{"namespace"})

	auditDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "mtlsguard_audit_duration_seconds",
		Help: "Time to recompute the conflict table: scope full (every service) or namespace (the services of the namespaces an event touched).",
		// 1ms to 32s.
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	}, []string{"scope"})

	lastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mtlsguard_audit_last_success_timestamp_seconds",
		Help: "Unix time of the last audit that recomputed and published without error.",
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(conflictsGauge, auditDuration, lastSuccess)
}

func setConflicts(reported []*finding) {
	counts := map[string]int{}
	for _, f := range reported {
		counts[f.namespace]++
	}
	conflictsGauge.Reset()
	for ns, n := range counts {
		conflictsGauge.WithLabelValues(ns).Set(float64(n))
	}
}
