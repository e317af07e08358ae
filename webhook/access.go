package webhook

import (
	"context"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// AccessReviewer answers whether a user may do something, as the API
// server's authorizer would. A denial names only what its requester may
// read (--disclose=permitted).
type AccessReviewer interface {
	Allowed(ctx context.Context, user authenticationv1.UserInfo, attrs authorizationv1.ResourceAttributes) (bool, error)
}

// subjectAccessReviews asks the API server, one SubjectAccessReview per
// question (RBAC: create subjectaccessreviews.authorization.k8s.io).
type subjectAccessReviews struct {
	client kubernetes.Interface
}

func (r subjectAccessReviews) Allowed(ctx context.Context, user authenticationv1.UserInfo, attrs authorizationv1.ResourceAttributes) (bool, error) {
	extra := make(map[string]authorizationv1.ExtraValue, len(user.Extra))
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := r.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user.Username, UID: user.UID, Groups: user.Groups, Extra: extra,
			ResourceAttributes: &attrs,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("may %s %s %s %s/%s: %w", user.Username, attrs.Verb, attrs.Resource, attrs.Namespace, attrs.Name, err)
	}
	return sar.Status.Allowed, nil
}

// newAccessReviewer is the reviewer of --disclose=permitted: the API
// server's answers, remembered for accessTTL; nil for --disclose=all.
func newAccessReviewer(cfg *rest.Config, o Options) (AccessReviewer, error) {
	if o.Disclose == DiscloseAll {
		return nil, nil
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("SubjectAccessReview client: %w", err)
	}
	return newAccessCache(subjectAccessReviews{client: c}, accessTTL, accessCacheSize), nil
}
