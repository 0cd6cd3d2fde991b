// Package fleet decides, for the node agent, what a node does about the RoutingPolicies of its cluster: which
// policy is its own, whether it may change now without exceeding the policy's maxUnavailable, and when a rollout
// has stopped. It is pure: the agent reads the policies, the node's labels, the other nodes' states and the
// rollout's leases from the API server, and writes back what it did.
package fleet

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Requirement is one matchExpressions entry of a label selector.
type Requirement struct {
	Key, Operator string
	Values        []string
}

// Selector is a policy's node selector, as Kubernetes' LabelSelector: every matchLabels pair and every
// requirement must hold. A nil Selector selects every node.
type Selector struct {
	MatchLabels      map[string]string
	MatchExpressions []Requirement
}

// Matches reports whether a node with labels is selected.
func (s *Selector) Matches(labels map[string]string) bool {
	if s == nil {
		return true
	}
	for k, v := range s.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, r := range s.MatchExpressions {
		v, has := labels[r.Key]
		switch r.Operator {
		case "In":
			if !has || !slices.Contains(r.Values, v) {
				return false
			}
		case "NotIn":
			if has && slices.Contains(r.Values, v) {
				return false
			}
		case "Exists":
			if !has {
				return false
			}
		case "DoesNotExist":
			if has {
				return false
			}
		default:
			return false // the CRD's schema refuses any other operator; select nothing rather than guess
		}
	}
	return true
}

// Policy is what the agent needs of a RoutingPolicy.
type Policy struct {
	Name        string
	Generation  int64
	Description string
	Selector    *Selector
	// MaxUnavailable is the rollout's budget as the policy gives it: "" (1), a count ("2") or a percentage
	// ("25%"), which the CRD's rules have checked.
	MaxUnavailable string
	Checks         Checks
}

// Checks are a policy's settings for the checks an agent runs after an apply verified.
type Checks struct {
	// Timeout bounds them; zero leaves it to the agent's own setting.
	Timeout time.Duration
	// SkipGateways are interfaces whose gateway is not checked.
	SkipGateways []string
}

// Budget is how many of n selected nodes may be changing at once: a count as given, a percentage of n rounded
// down, never below one (a rollout that may change no node would never end).
func (p Policy) Budget(n int) int {
	s := p.MaxUnavailable
	if s == "" {
		return 1
	}
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.Atoi(pct)
		if err != nil {
			return 1
		}
		return max(1, n*v/100)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return 1
	}
	return v
}

// ForNode picks the policy that selects a node with labels. More than one is a conflict the agent reports and does
// not act on: which of two descriptions a node should follow is the operator's to say. ok is false when none
// selects it (the node's symroute state is then removed).
func ForNode(policies []Policy, labels map[string]string) (p Policy, conflict []string, ok bool) {
	var matched []Policy
	for _, q := range policies {
		if q.Selector.Matches(labels) {
			matched = append(matched, q)
		}
	}
	switch len(matched) {
	case 0:
		return Policy{}, nil, false
	case 1:
		return matched[0], nil, true
	}
	for _, q := range matched {
		conflict = append(conflict, q.Name)
	}
	sort.Strings(conflict)
	return Policy{}, conflict, false
}

// Result is what a node's last run of a policy came to, as its RoutingNodeState says.
type Result string

const (
	Verified   Result = "Verified"
	Drifted    Result = "Drifted"
	RolledBack Result = "RolledBack"
	Invalid    Result = "Invalid"
	Removed    Result = "Removed"
)

// NodeState is a node's RoutingNodeState, as the rollout sees it.
type NodeState struct {
	Node              string
	Policy            string
	AppliedGeneration int64
	Result            Result
}

// Lease is one of a policy's rollout slots: a node holds it while it changes, until it renews no more.
type Lease struct {
	Name       string
	Holder     string
	RenewedAt  time.Time
	Expiration time.Duration
}

// free says whether the lease can be taken at now: nobody holds it, or its holder stopped renewing it (a node
// that died mid-change does not block the rollout for ever).
func (l Lease) free(now time.Time) bool {
	return l.Holder == "" || now.After(l.RenewedAt.Add(l.Expiration))
}

// LeaseNames are the names of a policy's rollout slots: one per node its budget lets change at once.
func LeaseNames(policy string, budget int) []string {
	out := make([]string, budget)
	for i := range out {
		out[i] = fmt.Sprintf("symroute-%s-%d", policy, i)
	}
	return out
}

// Decision is what a node does now about its policy.
type Decision struct {
	// Apply: the node applies the policy's generation, holding Lease while it does. Wait: it may not yet (no
	// slot is free, or the rollout stopped), and Why says which.
	Apply bool
	Lease string
	Why   string
}

// Next decides whether node may apply generation gen of p now. states are the RoutingNodeStates of every node p
// selects, leases p's rollout slots as the API server holds them (missing ones are free). A node that has applied
// gen already has nothing to do. A node that rolled gen back stops the rollout: no other node starts it until the
// policy changes (a new generation). A node already holding a slot keeps it.
func Next(p Policy, node string, nodes int, states []NodeState, leases []Lease, now time.Time) Decision {
	for _, s := range states {
		if s.Node == node && s.Policy == p.Name && s.AppliedGeneration == p.Generation && s.Result != RolledBack {
			return Decision{Why: fmt.Sprintf("generation %d is applied here", p.Generation)}
		}
	}
	var failed []string
	for _, s := range states {
		if s.Policy == p.Name && s.AppliedGeneration == p.Generation && s.Result == RolledBack {
			failed = append(failed, s.Node)
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return Decision{Why: fmt.Sprintf("the rollout of generation %d stopped: %s rolled it back", p.Generation, strings.Join(failed, ", "))}
	}
	held := map[string]Lease{}
	for _, l := range leases {
		held[l.Name] = l
	}
	names := LeaseNames(p.Name, p.Budget(nodes))
	for _, name := range names {
		if l, ok := held[name]; ok && l.Holder == node && !l.free(now) {
			return Decision{Apply: true, Lease: name}
		}
	}
	for _, name := range names {
		if l, ok := held[name]; !ok || l.free(now) {
			return Decision{Apply: true, Lease: name}
		}
	}
	var holders []string
	for _, name := range names {
		holders = append(holders, held[name].Holder)
	}
	sort.Strings(holders)
	return Decision{Why: fmt.Sprintf("maxUnavailable %d: %s are changing", len(names), strings.Join(holders, ", "))}
}
