package audit

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// Event reasons.
const (
	ReasonConflict = "MTLSConflict"
	ReasonResolved = "MTLSConflictResolved"
	eventAction    = "Audit"
	// maxNote is the events.k8s.io limit of an Event's note.
	maxNote = 1024
	// maxEvents bounds the Events of one publication: the first audit of
	// a cluster with thousands of old conflicts must not flood the API
	// server. The reports list them all.
	maxEvents = 100
)

// eventTargets picks, from a conflict's subjects (the Service, then its
// DestinationRule and PeerAuthentications), what its Events are recorded
// on: the DestinationRule, else the PeerAuthentications, else the Service.
func eventTargets(subjects []corev1.ObjectReference) []corev1.ObjectReference {
	var rules, policies, services []corev1.ObjectReference
	for _, s := range subjects {
		switch s.Kind {
		case kindDestinationRule:
			rules = append(rules, s)
		case kindPeerAuthentication:
			policies = append(policies, s)
		default:
			services = append(services, s)
		}
	}
	switch {
	case len(rules) > 0:
		return rules
	case len(policies) > 0:
		return policies
	}
	return services
}

// announce records an MTLSConflict Event for every reported conflict that
// is new since the last call, and an MTLSConflictResolved Event for every
// one that went away. The events library deduplicates repeats.
func (a *Auditor) announce(reported []*finding) {
	current := make(map[string]conflictRef, len(reported))
	sent, skipped := 0, 0
	emit := func(regarding, related *corev1.ObjectReference, typ, reason, note string) {
		if a.recorder == nil {
			return
		}
		if sent >= maxEvents {
			skipped++
			return
		}
		sent++
		a.recorder.Eventf(regarding, related, typ, reason, eventAction, "%s", truncate(note))
	}
	for _, f := range reported {
		k := f.key()
		if old, ok := a.known[k]; ok {
			current[k] = old
			continue
		}
		subjects := f.subjects(a.tracker.uid)
		current[k] = conflictRef{hostPort: f.hostPort, causes: eventTargets(subjects)}
		for _, target := range current[k].causes {
			emit(&target, &subjects[0], corev1.EventTypeWarning, ReasonConflict, f.message())
		}
	}
	for k, old := range a.known {
		if _, ok := current[k]; ok {
			continue
		}
		for _, target := range old.causes {
			emit(&target, nil, corev1.EventTypeNormal, ReasonResolved, fmt.Sprintf("%s: the mTLS conflict is resolved", old.hostPort))
		}
	}
	if skipped > 0 {
		a.log.Info("more conflict changes than one audit records Events for; the reports list them all", "eventsNotRecorded", skipped)
	}
	a.known = current
}

func truncate(s string) string {
	if len(s) <= maxNote {
		return s
	}
	return s[:maxNote-3] + "..."
}
