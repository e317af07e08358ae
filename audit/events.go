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
	for _, f := range reported {
		r := f.result(a.tracker.uid)
		k := resultKey(&r)
		current[k] = conflictRef{hostPort: f.hostPort, causes: eventTargets(r.Subjects)}
		if _, ok := a.known[k]; ok || a.recorder == nil {
			continue
		}
		related := r.Subjects[0]
		for _, target := range current[k].causes {
			a.recorder.Eventf(&target, &related, corev1.EventTypeWarning, ReasonConflict, eventAction, "%s", truncate(r.Description))
		}
	}
	for k, old := range a.known {
		if _, ok := current[k]; ok || a.recorder == nil {
			continue
		}
		for _, target := range old.causes {
			a.recorder.Eventf(&target, nil, corev1.EventTypeNormal, ReasonResolved, eventAction, "%s", truncate(fmt.Sprintf("%s: the mTLS conflict is resolved", old.hostPort)))
		}
	}
	a.known = current
}

func truncate(s string) string {
	if len(s) <= maxNote {
		return s
	}
	return s[:maxNote-3] + "..."
}
