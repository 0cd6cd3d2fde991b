package agent

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/fleet"
	"github.com/symroute/symroute/internal/core/report"
)

// This file turns the API's objects into fleet's terms and back. It is pure: the unstructured objects are the
// JSON the API server sends, as maps.

// policyFrom reads what the rollout needs of a RoutingPolicy. The CRD's schema has checked the shape; a value of
// another type is still an error here rather than a guess, since a selector read wrong selects the wrong nodes.
func policyFrom(u *unstructured.Unstructured) (fleet.Policy, error) {
	p := fleet.Policy{Name: u.GetName(), Generation: u.GetGeneration()}
	desc, _, err := unstructured.NestedString(u.Object, "spec", "description")
	if err != nil {
		return p, fmt.Errorf("policy %s: %v", p.Name, err)
	}
	p.Description = desc
	if raw, found, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "rollout", "maxUnavailable"); found {
		switch v := raw.(type) {
		case string:
			p.MaxUnavailable = v
		case int64:
			p.MaxUnavailable = strconv.FormatInt(v, 10)
		case float64:
			p.MaxUnavailable = strconv.FormatInt(int64(v), 10)
		default:
			return p, fmt.Errorf("policy %s: spec.rollout.maxUnavailable is %T, want a number or a percentage", p.Name, raw)
		}
	}
	if secs, found, err := unstructured.NestedInt64(u.Object, "spec", "checks", "timeoutSeconds"); err != nil {
		return p, fmt.Errorf("policy %s: spec.checks.timeoutSeconds: %v", p.Name, err)
	} else if found {
		p.Checks.Timeout = time.Duration(secs) * time.Second
	}
	if p.Checks.SkipGateways, _, err = unstructured.NestedStringSlice(u.Object, "spec", "checks", "skipGateways"); err != nil {
		return p, fmt.Errorf("policy %s: spec.checks.skipGateways: %v", p.Name, err)
	}
	sel, found, err := unstructured.NestedMap(u.Object, "spec", "nodeSelector")
	if err != nil {
		return p, fmt.Errorf("policy %s: %v", p.Name, err)
	}
	if !found {
		return p, nil
	}
	p.Selector = &fleet.Selector{}
	if p.Selector.MatchLabels, _, err = unstructured.NestedStringMap(sel, "matchLabels"); err != nil {
		return p, fmt.Errorf("policy %s: spec.nodeSelector: %v", p.Name, err)
	}
	exprs, _, err := unstructured.NestedSlice(sel, "matchExpressions")
	if err != nil {
		return p, fmt.Errorf("policy %s: spec.nodeSelector: %v", p.Name, err)
	}
	for i, e := range exprs {
		m, ok := e.(map[string]any)
		if !ok {
			return p, fmt.Errorf("policy %s: spec.nodeSelector.matchExpressions[%d] is not an object", p.Name, i)
		}
		var r fleet.Requirement
		r.Key, _, _ = unstructured.NestedString(m, "key")
		r.Operator, _, _ = unstructured.NestedString(m, "operator")
		if r.Values, _, err = unstructured.NestedStringSlice(m, "values"); err != nil {
			return p, fmt.Errorf("policy %s: spec.nodeSelector.matchExpressions[%d]: %v", p.Name, i, err)
		}
		p.Selector.MatchExpressions = append(p.Selector.MatchExpressions, r)
	}
	return p, nil
}

// nodeStatus is a RoutingNodeState's status as the agent writes it.
type nodeStatus struct {
	Policy             string
	AppliedGeneration  int64
	Result             fleet.Result
	Message            string
	LastTransitionTime time.Time
	Findings           []drift.Finding
}

// nodeStatusFrom reads a RoutingNodeState's status; a state the agent has not written yet reads as zero.
func nodeStatusFrom(u *unstructured.Unstructured) nodeStatus {
	var s nodeStatus
	s.Policy, _, _ = unstructured.NestedString(u.Object, "status", "policy")
	s.AppliedGeneration, _, _ = unstructured.NestedInt64(u.Object, "status", "appliedGeneration")
	result, _, _ := unstructured.NestedString(u.Object, "status", "result")
	s.Result = fleet.Result(result)
	s.Message, _, _ = unstructured.NestedString(u.Object, "status", "message")
	if t, _, _ := unstructured.NestedString(u.Object, "status", "lastTransitionTime"); t != "" {
		s.LastTransitionTime, _ = time.Parse(time.RFC3339, t)
	}
	findings, _, _ := unstructured.NestedSlice(u.Object, "status", "findings")
	for _, f := range findings {
		m, ok := f.(map[string]any)
		if !ok {
			continue
		}
		str := func(k string) string { v, _ := m[k].(string); return v }
		num := func(k string) int { v, _ := m[k].(int64); return int(v) }
		s.Findings = append(s.Findings, drift.Finding{Kind: drift.Kind(str("kind")), Message: str("message"), Interface: str("interface"),
			Expected: str("expected"), Actual: str("actual"), Path: str("path"), Line: num("line"), Column: num("column")})
	}
	return s
}

// object renders s as the status field's JSON. Integers are int64: unstructured objects hold no other.
func (s nodeStatus) object() map[string]any {
	out := map[string]any{
		"policy":             s.Policy,
		"appliedGeneration":  s.AppliedGeneration,
		"result":             string(s.Result),
		"message":            s.Message,
		"lastTransitionTime": s.LastTransitionTime.UTC().Format(time.RFC3339),
	}
	if len(s.Findings) > 0 {
		findings := make([]any, 0, len(s.Findings))
		for _, f := range s.Findings {
			m := map[string]any{"kind": string(f.Kind), "message": f.Message}
			for k, v := range map[string]string{"interface": f.Interface, "expected": f.Expected, "actual": f.Actual, "path": f.Path} {
				if v != "" {
					m[k] = v
				}
			}
			if f.Line > 0 {
				m["line"], m["column"] = int64(f.Line), int64(f.Column)
			}
			findings = append(findings, m)
		}
		out["findings"] = findings
	}
	return out
}

// next is the status the node's state takes when the agent's run ends in s: the transition time moves only when
// what the state says changes (another policy, generation or result), as a condition's does.
func (s nodeStatus) next(old nodeStatus, now time.Time) nodeStatus {
	s.LastTransitionTime = old.LastTransitionTime
	if s.Policy != old.Policy || s.AppliedGeneration != old.AppliedGeneration || s.Result != old.Result || old.LastTransitionTime.IsZero() {
		s.LastTransitionTime = now
	}
	return s
}

// problems renders a description's report as a policy's status.problems, each with its line.
func problems(r report.Report) []any {
	out := make([]any, 0, len(r.Entries))
	for _, e := range r.Entries {
		m := map[string]any{"severity": e.Severity.String(), "message": e.Message}
		if len(e.Path) > 0 {
			m["path"] = e.Path.String()
		}
		if e.Pos.Line > 0 {
			m["line"], m["column"] = int64(e.Pos.Line), int64(e.Pos.Column)
		}
		out = append(out, m)
	}
	return out
}

// errorLines renders a report's errors on one line each, as "line 7: interfaces[1].gateway: ...", for a node's
// message.
func errorLines(r report.Report) string {
	var lines []string
	for _, e := range r.Only(report.Error).Entries {
		line := e.Message
		if len(e.Path) > 0 {
			line = e.Path.String() + ": " + line
		}
		if e.Pos.Line > 0 {
			line = fmt.Sprintf("line %d: %s", e.Pos.Line, line)
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}
