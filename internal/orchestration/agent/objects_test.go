package agent

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kjson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/fleet"
)

// decode reads an object as the API server's JSON, so numbers arrive as client-go decodes them.
func decode(t *testing.T, text string) *unstructured.Unstructured {
	t.Helper()
	var obj map[string]any
	if err := kjson.Unmarshal([]byte(text), &obj); err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: obj}
}

func TestPolicyFromReadsSelectorAndBudget(t *testing.T) {
	u := decode(t, `{"apiVersion":"symroute.io/v1alpha1","kind":"RoutingPolicy","metadata":{"name":"edge","generation":3},
		"spec":{"description":"version: 1\n","rollout":{"maxUnavailable":2},
		"nodeSelector":{"matchLabels":{"role":"edge"},"matchExpressions":[{"key":"zone","operator":"In","values":["a","b"]}]}}}`)
	p, err := policyFrom(u)
	if err != nil {
		t.Fatal(err)
	}
	want := fleet.Policy{Name: "edge", Generation: 3, Description: "version: 1\n", MaxUnavailable: "2", Selector: &fleet.Selector{
		MatchLabels:      map[string]string{"role": "edge"},
		MatchExpressions: []fleet.Requirement{{Key: "zone", Operator: "In", Values: []string{"a", "b"}}},
	}}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got %+v\nwant %+v", p, want)
	}
	if !p.Selector.Matches(map[string]string{"role": "edge", "zone": "b"}) || p.Selector.Matches(map[string]string{"role": "edge"}) {
		t.Error("the selector read does not select as written")
	}

	u = decode(t, `{"metadata":{"name":"all"},"spec":{"description":"x","rollout":{"maxUnavailable":"25%"}}}`)
	if p, err = policyFrom(u); err != nil || p.Selector != nil || p.MaxUnavailable != "25%" {
		t.Errorf("no selector, a percentage: %+v %v", p, err)
	}
	u = decode(t, `{"metadata":{"name":"bad"},"spec":{"description":"x","rollout":{"maxUnavailable":true}}}`)
	if _, err = policyFrom(u); err == nil || !strings.Contains(err.Error(), "maxUnavailable") {
		t.Errorf("a boolean budget: %v", err)
	}
}

// TestNodeStatusRoundTrip: what the agent writes it reads back, through JSON as the API server stores it, and
// the transition time moves only when the result, policy or generation does.
func TestNodeStatusRoundTrip(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	s := nodeStatus{Policy: "edge", AppliedGeneration: 4, Result: fleet.RolledBack, Message: "gateway 10.0.0.254 did not answer",
		Findings: []drift.Finding{{Kind: "rule-missing", Interface: "eth-b", Message: "rule missing", Line: 7, Column: 5}}}
	s = s.next(nodeStatus{}, t0)
	u := &unstructured.Unstructured{Object: map[string]any{"status": s.object()}}
	data, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	back := nodeStatusFrom(decode(t, string(data)))
	if back.Policy != "edge" || back.AppliedGeneration != 4 || back.Result != fleet.RolledBack || !back.LastTransitionTime.Equal(t0) {
		t.Errorf("read back %+v", back)
	}
	if got := string(data); !strings.Contains(got, `"line":7`) || !strings.Contains(got, `"interface":"eth-b"`) {
		t.Errorf("findings: %s", got)
	}
	// The whole status reads back as written: the agent compares the two to skip writing what it wrote already.
	if !reflect.DeepEqual(back.object(), s.object()) {
		t.Errorf("read back as\n%v\nwritten as\n%v", back.object(), s.object())
	}
	same := nodeStatus{Policy: "edge", AppliedGeneration: 4, Result: fleet.RolledBack, Message: "another message"}.next(back, t0.Add(time.Hour))
	if !same.LastTransitionTime.Equal(t0) {
		t.Errorf("an unchanged result moved the transition time to %v", same.LastTransitionTime)
	}
	moved := nodeStatus{Policy: "edge", AppliedGeneration: 5, Result: fleet.Verified}.next(back, t0.Add(time.Hour))
	if !moved.LastTransitionTime.Equal(t0.Add(time.Hour)) {
		t.Errorf("a new generation kept the transition time %v", moved.LastTransitionTime)
	}
}

func TestProblemsCarryTheirLines(t *testing.T) {
	_, rep := description.ParseWith([]byte("version: 1\ninterfaces:\n  - name: eth-a\n    gateway: not-an-address\n"), description.Options{FromNode: true})
	if !rep.HasErrors(false) {
		t.Fatal("want an error")
	}
	got := problems(rep)
	first := got[0].(map[string]any)
	if first["severity"] != "error" || first["line"] != int64(4) || first["path"] != "interfaces[0].gateway" {
		t.Errorf("problems %v", got)
	}
	if lines := errorLines(rep); !strings.HasPrefix(lines, "line 4: interfaces[0].gateway: ") {
		t.Errorf("message %q", lines)
	}
}

func TestSummarizeCountsTheSelectedNodesAtThisGeneration(t *testing.T) {
	p := fleet.Policy{Name: "edge", Generation: 2}
	states := []fleet.NodeState{
		{Node: "n1", Policy: "edge", AppliedGeneration: 2, Result: fleet.Verified},
		{Node: "n2", Policy: "edge", AppliedGeneration: 1, Result: fleet.Verified}, // the previous generation
		{Node: "n3", Policy: "edge", AppliedGeneration: 2, Result: fleet.Verified}, // not selected any more
	}
	if got := Summarize(p, []string{"n1", "n2"}, states); got != (Summary{Nodes: 2, Verified: 1, Rollout: Progressing}) {
		t.Errorf("one of two: %+v", got)
	}
	states[1] = fleet.NodeState{Node: "n2", Policy: "edge", AppliedGeneration: 2, Result: fleet.Verified}
	if got := Summarize(p, []string{"n1", "n2"}, states); got != (Summary{Nodes: 2, Verified: 2, Rollout: Complete}) {
		t.Errorf("both: %+v", got)
	}
	states[1].Result = fleet.RolledBack
	if got := Summarize(p, []string{"n1", "n2"}, states); got != (Summary{Nodes: 2, Verified: 1, Failed: 1, Rollout: Stopped}) {
		t.Errorf("one rolled back: %+v", got)
	}
	states[1].Result = fleet.Drifted
	if got := Summarize(p, []string{"n1", "n2"}, states); got != (Summary{Nodes: 2, Verified: 1, Drifted: 1, Rollout: Complete}) {
		t.Errorf("a drifted node: %+v", got)
	}
	states[0] = fleet.NodeState{Node: "n1", Policy: "other", AppliedGeneration: 2, Result: fleet.Verified}
	if got := Summarize(p, []string{"n1"}, states); got.Verified != 0 || got.Rollout != Progressing {
		t.Errorf("another policy's generation counted: %+v", got)
	}
}

// TestShippedPolicyExampleHolds: the README's example RoutingPolicy reads as a policy, and its description holds
// on any node, with no problem at all.
func TestShippedPolicyExampleHolds(t *testing.T) {
	data, err := os.ReadFile("../../../examples/kubernetes/routingpolicy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policyFrom(decode(t, string(js)))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "multi-homed" || p.Selector == nil || p.MaxUnavailable != "1" {
		t.Errorf("the example read as %+v", p)
	}
	if _, rep := description.ParseWith([]byte(p.Description), description.Options{FromNode: true}); len(rep.Entries) > 0 {
		t.Errorf("the example's description has problems:\n%s", errorLines(rep))
	}
}
