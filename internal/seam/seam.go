// Package seam lets this module's tests reach into package webhook further
// than its public API goes: they make its decisions slow, to prove the
// decision deadline against a real API server. Package webhook fills in the
// hooks when it is initialised; production code never calls them, and
// being internal, nothing outside the module can.
package seam

import "context"

// SlowDecisions makes every decision of the webhook that options, a
// *webhook.Options, configure call stall before deciding. stall may ignore
// its context, to stand for an engine that checks it late.
var SlowDecisions func(options any, stall func(ctx context.Context))
