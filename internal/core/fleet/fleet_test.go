package fleet

import (
	"strings"
	"testing"
	"time"

	_ "github.com/symroute/symroute/internal/tools/golden"
)

func TestSelectorMatchesAsKubernetes(t *testing.T) {
	labels := map[string]string{"role": "ingress", "zone": "a"}
	for _, c := range []struct {
		sel  *Selector
		want bool
	}{
		{nil, true},
		{&Selector{MatchLabels: map[string]string{"role": "ingress"}}, true},
		{&Selector{MatchLabels: map[string]string{"role": "storage"}}, false},
		{&Selector{MatchExpressions: []Requirement{{Key: "zone", Operator: "In", Values: []string{"a", "b"}}}}, true},
		{&Selector{MatchExpressions: []Requirement{{Key: "zone", Operator: "NotIn", Values: []string{"a"}}}}, false},
		{&Selector{MatchExpressions: []Requirement{{Key: "gpu", Operator: "NotIn", Values: []string{"yes"}}}}, true},
		{&Selector{MatchExpressions: []Requirement{{Key: "gpu", Operator: "Exists"}}}, false},
		{&Selector{MatchExpressions: []Requirement{{Key: "gpu", Operator: "DoesNotExist"}}}, true},
		{&Selector{MatchExpressions: []Requirement{{Key: "zone", Operator: "Gt", Values: []string{"1"}}}}, false},
		{&Selector{MatchLabels: map[string]string{"role": "ingress"}, MatchExpressions: []Requirement{{Key: "zone", Operator: "In", Values: []string{"b"}}}}, false},
	} {
		if got := c.sel.Matches(labels); got != c.want {
			t.Errorf("%+v: %v, want %v", c.sel, got, c.want)
		}
	}
}

func TestBudget(t *testing.T) {
	for _, c := range []struct {
		max   string
		nodes int
		want  int
	}{{"", 10, 1}, {"3", 10, 3}, {"25%", 10, 2}, {"25%", 3, 1}, {"100%", 3, 3}, {"0", 3, 1}} {
		if got := (Policy{MaxUnavailable: c.max}).Budget(c.nodes); got != c.want {
			t.Errorf("maxUnavailable %q of %d nodes: %d, want %d", c.max, c.nodes, got, c.want)
		}
	}
}

func TestForNodeRefusesTwoPolicies(t *testing.T) {
	ingress := Policy{Name: "ingress", Selector: &Selector{MatchLabels: map[string]string{"role": "ingress"}}}
	all := Policy{Name: "all"}
	if p, conflict, ok := ForNode([]Policy{ingress}, map[string]string{"role": "ingress"}); !ok || p.Name != "ingress" || conflict != nil {
		t.Errorf("one policy: %v %v %v", p, conflict, ok)
	}
	if _, _, ok := ForNode([]Policy{ingress}, map[string]string{"role": "db"}); ok {
		t.Error("a node no policy selects got one")
	}
	if _, conflict, ok := ForNode([]Policy{ingress, all}, map[string]string{"role": "ingress"}); ok || strings.Join(conflict, ",") != "all,ingress" {
		t.Errorf("two policies: %v %v", conflict, ok)
	}
}

// TestRolloutHonoursMaxUnavailable: with a budget of two, the third node waits while two hold the slots, takes
// one whose holder stopped renewing it, keeps its own, and nobody starts a generation another node rolled back.
func TestRolloutHonoursMaxUnavailable(t *testing.T) {
	now := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	p := Policy{Name: "edge", Generation: 4, MaxUnavailable: "2"}
	names := LeaseNames("edge", 2)
	busy := []Lease{
		{Name: names[0], Holder: "n1", RenewedAt: now.Add(-5 * time.Second), Expiration: 30 * time.Second},
		{Name: names[1], Holder: "n2", RenewedAt: now.Add(-5 * time.Second), Expiration: 30 * time.Second},
	}
	if d := Next(p, "n3", 3, nil, busy, now); d.Apply || !strings.Contains(d.Why, "maxUnavailable 2: n1, n2 are changing") {
		t.Errorf("n3 with both slots held: %+v", d)
	}
	if d := Next(p, "n2", 3, nil, busy, now); !d.Apply || d.Lease != names[1] {
		t.Errorf("n2 keeps its slot: %+v", d)
	}
	stale := []Lease{busy[0], {Name: names[1], Holder: "n2", RenewedAt: now.Add(-time.Minute), Expiration: 30 * time.Second}}
	if d := Next(p, "n3", 3, nil, stale, now); !d.Apply || d.Lease != names[1] {
		t.Errorf("n3 with n2's slot expired: %+v", d)
	}
	if d := Next(p, "n3", 3, nil, busy[:1], now); !d.Apply || d.Lease != names[1] {
		t.Errorf("n3 with a slot never taken: %+v", d)
	}
	done := []NodeState{{Node: "n3", Policy: "edge", AppliedGeneration: 4, Result: Verified}}
	if d := Next(p, "n3", 3, done, nil, now); d.Apply {
		t.Errorf("n3 applied generation 4 already: %+v", d)
	}
	failed := []NodeState{{Node: "n1", Policy: "edge", AppliedGeneration: 4, Result: RolledBack}}
	for _, node := range []string{"n1", "n3"} {
		if d := Next(p, node, 3, failed, nil, now); d.Apply || !strings.Contains(d.Why, "stopped: n1 rolled it back") {
			t.Errorf("%s after n1 rolled generation 4 back: %+v", node, d)
		}
	}
	// A new generation starts again.
	p.Generation = 5
	if d := Next(p, "n1", 3, failed, nil, now); !d.Apply {
		t.Errorf("generation 5 after 4 failed: %+v", d)
	}
}
