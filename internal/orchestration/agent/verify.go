package agent

import (
	"context"
	"fmt"

	"github.com/symroute/symroute/internal/core/fleet"
)

// Verify checks that the node still runs the generation of its policy it applied, as symroute verify does, and
// records Verified or Drifted with the findings: a rule someone deleted shows in the node's state, its condition,
// an Event and the metrics. It repairs nothing: networkd's files are intact, and the operator decides whether to
// reapply (a new generation) or find who deleted the rule. A node with nothing applied (never, rolled back,
// invalid, removed) or waiting for a newer generation has nothing to verify.
func (a *Agent) Verify(ctx context.Context) error {
	old, err := a.ownState(ctx)
	if err != nil {
		return err
	}
	a.noteState(old)
	if old.Policy == "" || old.Result != fleet.Verified && old.Result != fleet.Drifted {
		return nil
	}
	u, err := a.view().policy(ctx, old.Policy)
	if err != nil {
		return err
	}
	if u == nil {
		return nil // the reconcile the deletion's event started removes the configuration
	}
	p, err := policyFrom(u)
	if err != nil {
		return err
	}
	if p.Generation != old.AppliedGeneration {
		return nil // the rollout brings the new generation; until then, the old one's files stay
	}
	res, verr := a.Host.Verify(ctx, []byte(p.Description))
	if verr != nil {
		a.noteVerify(nil)
		return fmt.Errorf("verify: %w", verr)
	}
	a.noteVerify(&res)
	s := nodeStatus{Policy: p.Name, AppliedGeneration: p.Generation, Result: fleet.Verified, Findings: res.Findings,
		Message: "verified: replies leave by the interface they came in on"}
	if !res.OK() {
		s.Result = fleet.Drifted
		s.Message = fmt.Sprintf("%d difference(s) from the policy's description: %s", len(res.Findings), res.Findings[0].Message)
	}
	if s.Result == fleet.Verified && old.Result == fleet.Verified {
		return nil // still as the apply left it: the state keeps the apply's message, nothing is written
	}
	if s.Result != old.Result {
		a.logf("policy %s: %s", p.Name, s.Message)
	}
	return a.record(ctx, old, s)
}
