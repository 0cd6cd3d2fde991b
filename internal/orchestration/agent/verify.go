package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/symroute/symroute/internal/core/fleet"
)

// Verify checks that the node still runs the generation of its policy it applied, as symroute verify does, and
// records Verified or Drifted with the findings: a rule someone deleted shows in the node's state, its condition,
// an Event and the metrics. A description that no longer holds on the node (a link lost the address the policy
// leaves to it) is Drifted too, saying why. It repairs nothing: networkd's files are intact, and the operator
// decides whether to reapply (a new generation) or find who deleted the rule. A node with nothing applied (never,
// rolled back, invalid, removed) or waiting for a newer generation has nothing to verify; its Node condition is
// still brought in line with its state (one a failed report or an older agent left).
func (a *Agent) Verify(ctx context.Context) error {
	old, err := a.ownState(ctx)
	if err != nil {
		return err
	}
	a.noteState(old)
	p, ok, err := a.appliedPolicy(ctx, old)
	if err != nil {
		return err
	}
	if !ok {
		a.forgetVerify()
		return a.syncCondition(ctx, old)
	}
	s := nodeStatus{Policy: p.Name, AppliedGeneration: p.Generation}
	res, err := a.Host.Verify(ctx, []byte(p.Description))
	switch {
	case errors.Is(err, ErrDoesNotHold):
		a.noteVerify(nil)
		s.Result, s.Message = fleet.Drifted, err.Error()
	case err != nil:
		a.noteVerify(nil)
		return fmt.Errorf("verify: %w", err)
	case res.OK():
		a.noteVerify(&res)
		s.Result, s.Message = fleet.Verified, "verified: replies leave by the interface they came in on"
	default:
		a.noteVerify(&res)
		s.Result, s.Findings = fleet.Drifted, res.Findings
		s.Message = fmt.Sprintf("%d difference(s) from the policy's description: %s", len(res.Findings), res.Findings[0].Message)
	}
	if s.Result == fleet.Verified && old.Result == fleet.Verified {
		// Still as the apply left it: the state keeps the apply's message, nothing is written.
		return a.syncCondition(ctx, old)
	}
	if s.Result != old.Result {
		a.logf("policy %s: %s", p.Name, s.Message)
	}
	return a.record(ctx, old, s)
}

// appliedPolicy is the policy whose generation the node's state says is in place (Verified or Drifted), as it is
// now; ok is false when there is none to verify: nothing applied, the policy gone (the reconcile its deletion
// started removes the configuration), or a newer generation on its way (the old one's files stay until then).
func (a *Agent) appliedPolicy(ctx context.Context, s nodeStatus) (p fleet.Policy, ok bool, err error) {
	if s.Policy == "" || s.Result != fleet.Verified && s.Result != fleet.Drifted {
		return p, false, nil
	}
	u, err := a.view().policy(ctx, s.Policy)
	if err != nil || u == nil {
		return p, false, err
	}
	if p, err = policyFrom(u); err != nil {
		return p, false, err
	}
	return p, p.Generation == s.AppliedGeneration, nil
}
