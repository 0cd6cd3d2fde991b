package apply

import (
	"slices"

	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/core/routing"
)

// recordedRulesNotIn lists the rules in the kernel that recorded has and keep has not, shaped like symroute's,
// less those in spare (rules alike in every part that were there before the transaction began, each sparing one).
func (e *Engine) recordedRulesNotIn(recorded, keep, spare []record.Rule) ([]record.Rule, error) {
	rules, err := e.deps.Kernel.Rules()
	if err != nil {
		return nil, err
	}
	spare = slices.Clone(spare)
	var out []record.Rule
	for _, kr := range rules {
		r := ownership.RuleOf(kr)
		if !ownership.RuleShape(kr) || !slices.Contains(recorded, r) || slices.Contains(keep, r) {
			continue
		}
		if i := slices.Index(spare, r); i >= 0 {
			spare = slices.Delete(spare, i, i+1)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// existingRules are the rules of want already in the kernel, shaped like symroute's, that applied does not list:
// not symroute's doing, so an undo leaves them.
func (e *Engine) existingRules(want []record.Rule, applied *record.State) ([]record.Rule, error) {
	var mine []record.Rule
	if applied != nil {
		mine = applied.Rules
	}
	rules, err := e.deps.Kernel.Rules()
	if err != nil {
		return nil, err
	}
	var out []record.Rule
	for _, kr := range rules {
		if r := ownership.RuleOf(kr); ownership.RuleShape(kr) && slices.Contains(want, r) && !slices.Contains(mine, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// deleteRules deletes each of the rules that is still in the kernel, as it is now. The kernel deletes the first
// rule, in its order, that matches a request on the parts the request gives; it cannot be asked for "no input
// interface" or "no mark". So a rule is deleted only where the first rule a request for it would hit is shaped
// like symroute's; otherwise it stays, with a note, and another program's rule is never hit.
func (e *Engine) deleteRules(rules []record.Rule) error {
	if len(rules) == 0 {
		return nil
	}
	now, err := e.deps.Kernel.Rules()
	if err != nil {
		return err
	}
	for _, r := range rules {
		// The rule the kernel would delete: the first that agrees on every selector the request carries.
		i := slices.IndexFunc(now, func(kr routing.Rule) bool { return ownership.DeleteTakes(kr, r) })
		if i < 0 {
			continue // networkd took it away already
		}
		kr := now[i]
		line := r.String()
		if !ownership.RuleShape(kr) || ownership.RuleOf(kr) != r {
			if !slices.ContainsFunc(now[i+1:], func(kr routing.Rule) bool { return ownership.RuleShape(kr) && ownership.RuleOf(kr) == r }) {
				continue // networkd took it away already; the rule found is another's
			}
			e.logf("note: left symroute's stale rule %s: a rule of another program with the same priority and table, which also selects on an interface, mark or port, comes first, and the kernel would delete that one instead. Delete it by hand with ip rule del and every selector", line)
			continue
		}
		if err := e.deps.Kernel.DeleteRule(kr); err != nil {
			return err
		}
		now = slices.Delete(now, i, i+1)
		e.logf("deleted symroute's stale rule %s", line)
	}
	return nil
}
