package webhook

import (
	"context"

	"github.com/mtlsguard/mtlsguard/internal/seam"
	"github.com/mtlsguard/mtlsguard/policy"
)

// slowEngine puts a stall before every decision. Only tests set it: the
// package's own through Options.slow, the integration tests through
// internal/seam.
type slowEngine struct {
	stall func(ctx context.Context)
}

func init() {
	seam.SlowDecisions = func(options any, stall func(ctx context.Context)) {
		options.(*Options).slow = &slowEngine{stall: stall}
	}
}

// wrap returns decide with the stall before it.
func (s *slowEngine) wrap(decide decideFunc) decideFunc {
	return func(ctx context.Context, ch policy.Change) (verdict, error) {
		s.stall(ctx)
		return decide(ctx, ch)
	}
}
