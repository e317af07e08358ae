package webhook

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mtlsguard/mtlsguard/policy"
)

// lastApplied is kubectl's copy of the whole object, as an annotation.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// StripPod is the informer cache transform for Pods. It keeps what the
// engine reads and drops everything else before the Pod enters the cache:
// namespace, name and resourceVersion; labels; the sidecar status
// annotation's key (its value, a few hundred bytes of JSON, is not read);
// the ambient redirection annotation and hostNetwork, which decide whether
// ztunnel captures the pod; container names and ports (name and number);
// the names of istio-proxy init containers (native sidecars); the service
// account (the workload's identity); the phase. Other objects pass through.
func StripPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       p.Namespace,
			Name:            p.Name,
			ResourceVersion: p.ResourceVersion,
			Labels:          p.Labels,
		},
		Spec:   corev1.PodSpec{ServiceAccountName: p.Spec.ServiceAccountName},
		Status: corev1.PodStatus{Phase: p.Status.Phase},
	}
	if _, ok := p.Annotations[policy.SidecarStatusAnnotation]; ok {
		out.Annotations = map[string]string{policy.SidecarStatusAnnotation: ""}
	}
	if v, ok := p.Annotations[policy.RedirectionAnnotation]; ok {
		if out.Annotations == nil {
			out.Annotations = map[string]string{}
		}
		out.Annotations[policy.RedirectionAnnotation] = v
	}
	out.Spec.HostNetwork = p.Spec.HostNetwork
	if len(p.Spec.Containers) > 0 {
		out.Spec.Containers = make([]corev1.Container, len(p.Spec.Containers))
		for i, c := range p.Spec.Containers {
			out.Spec.Containers[i].Name = c.Name
			if len(c.Ports) > 0 {
				ports := make([]corev1.ContainerPort, len(c.Ports))
				for j, cp := range c.Ports {
					ports[j] = corev1.ContainerPort{Name: cp.Name, ContainerPort: cp.ContainerPort}
				}
				out.Spec.Containers[i].Ports = ports
			}
		}
	}
	for _, c := range p.Spec.InitContainers {
		if c.Name == policy.ProxyContainerName {
			out.Spec.InitContainers = []corev1.Container{{Name: c.Name}}
			break
		}
	}
	return out, nil
}

// stripMeta is the informer cache transform for every other object: it
// drops managedFields and kubectl's last-applied-configuration annotation,
// which together often outweigh the object. The webhook reads neither.
func stripMeta(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
		delete(m.GetAnnotations(), lastApplied)
	}
	return obj, nil
}
