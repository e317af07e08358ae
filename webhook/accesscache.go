package webhook

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
)

const (
	// accessTTL is how long an answer of the authorizer is reused: a
	// denial that names a namespace up to this long after the requester
	// lost access to it is harmless, one SubjectAccessReview per name and
	// write is not.
	accessTTL = 30 * time.Second
	// accessCacheSize bounds the answers kept (a few hundred bytes each).
	accessCacheSize = 10000
)

// accessCache remembers an AccessReviewer's answers per user and question
// for a while. Errors are not remembered.
type accessCache struct {
	next AccessReviewer
	ttl  time.Duration
	max  int
	now  func() time.Time

	mu      sync.Mutex
	answers map[string]cachedAnswer
}

type cachedAnswer struct {
	allowed bool
	expires time.Time
}

func newAccessCache(next AccessReviewer, ttl time.Duration, max int) *accessCache {
	return &accessCache{next: next, ttl: ttl, max: max, now: time.Now, answers: map[string]cachedAnswer{}}
}

func (c *accessCache) Allowed(ctx context.Context, user authenticationv1.UserInfo, attrs authorizationv1.ResourceAttributes) (bool, error) {
	key := accessKey(user, attrs)
	now := c.now()
	c.mu.Lock()
	a, ok := c.answers[key]
	c.mu.Unlock()
	if ok && now.Before(a.expires) {
		return a.allowed, nil
	}
	allowed, err := c.next.Allowed(ctx, user, attrs)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.answers) >= c.max {
		for k, a := range c.answers {
			if !now.Before(a.expires) {
				delete(c.answers, k)
			}
		}
		if len(c.answers) >= c.max {
			// All still fresh: start over rather than grow.
			clear(c.answers)
		}
	}
	c.answers[key] = cachedAnswer{allowed: allowed, expires: now.Add(c.ttl)}
	return allowed, nil
}

// accessKey identifies a user (name, uid, groups, extra) and a question.
func accessKey(user authenticationv1.UserInfo, a authorizationv1.ResourceAttributes) string {
	var b strings.Builder
	for _, s := range []string{user.Username, user.UID, a.Verb, a.Group, a.Resource, a.Namespace, a.Name} {
		b.WriteString(s)
		b.WriteByte(0)
	}
	for _, g := range user.Groups {
		b.WriteString(g)
		b.WriteByte(1)
	}
	keys := make([]string, 0, len(user.Extra))
	for k := range user.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(2)
		b.WriteString(strings.Join(user.Extra[k], "\x03"))
		b.WriteByte(2)
	}
	return b.String()
}
