package webhook

// A typed informer decodes a whole list page at once, so one object its
// types cannot read (a TLS or mTLS mode, or a field, that a newer Istio's
// CRD admits and this version's istio.io types do not know) fails the
// list: the cache never syncs and every write gets the `cache not synced`
// answer. The informers of the Istio kinds therefore list and watch
// unstructured objects, and the cache transform decodes each one into its
// type as it enters the cache, where it is kept typed, as before. An object
// that does not decode enters the cache as an undecodable placeholder
// (metadata only), which the store leaves out of the state, like a rule
// the engine cannot read, while everything else is checked.

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var undecodableObjects = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "mtlsguard_cache_undecodable_objects_total",
	Help: "Istio objects whose informer event this version's types could not decode; each is left out of the mTLS state.",
}, []string{"kind"})

func init() {
	ctrlmetrics.Registry.MustRegister(undecodableObjects)
}

// undecodable stands in the cache for an object that did not decode:
// Object is an empty object of its type with its metadata, err says why.
type undecodable struct {
	client.Object
	err error
}

func (u *undecodable) DeepCopyObject() runtime.Object {
	return &undecodable{Object: u.Object.DeepCopyObject().(client.Object), err: u.err}
}

// decodeTyped is a cache transform: it decodes an unstructured object of a
// kind the scheme knows into its type, or into an undecodable placeholder
// if the type cannot read it. Other objects pass through, so it may run
// again on what it returned.
func decodeTyped(scheme *runtime.Scheme) toolscache.TransformFunc {
	decoder := serializer.NewCodecFactory(scheme).UniversalDeserializer()
	return func(obj any) (any, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return obj, nil
		}
		gvk := u.GroupVersionKind()
		typed, err := scheme.New(gvk)
		if err != nil {
			return obj, nil // no type to decode into: kept as it is
		}
		data, err := u.MarshalJSON()
		if err == nil {
			_, _, err = decoder.Decode(data, &gvk, typed)
		}
		if err == nil {
			return typed, nil
		}
		empty, _ := scheme.New(gvk)
		placeholder := empty.(client.Object)
		placeholder.GetObjectKind().SetGroupVersionKind(gvk)
		placeholder.SetNamespace(u.GetNamespace())
		placeholder.SetName(u.GetName())
		placeholder.SetUID(u.GetUID())
		placeholder.SetResourceVersion(u.GetResourceVersion())
		return &undecodable{
			Object: placeholder,
			err: fmt.Errorf("%s %s/%s (%s): not readable by this version's types (a value of a newer Istio?): %w",
				gvk.Kind, u.GetNamespace(), u.GetName(), gvk.GroupVersion(), err),
		}, nil
	}
}

// chain runs cache transforms in order.
func chain(fs ...toolscache.TransformFunc) toolscache.TransformFunc {
	return func(obj any) (any, error) {
		for _, f := range fs {
			var err error
			if obj, err = f(obj); err != nil {
				return nil, err
			}
		}
		return obj, nil
	}
}
