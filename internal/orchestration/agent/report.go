package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/fleet"
	"github.com/symroute/symroute/internal/core/metrics"
)

// This file reports a node's state beyond its RoutingNodeState: a condition on the Node (as node-problem-detector
// reports, where `kubectl describe node` and alerting on node conditions look), an Event on each transition, and
// Prometheus metrics.

// ConditionType is the Node condition the agent keeps: True while the node's routing verifies against its
// policy, False with the result as its reason otherwise; absent on a node no policy selects.
const ConditionType corev1.NodeConditionType = "SymrouteVerified"

// Reporting names the agent in the Events it writes.
const reportingController = "symroute.io/agent"

// maxNote and maxReportingInstance are the API server's bounds on an Event's note and reporting instance.
const (
	maxNote              = 1024
	maxReportingInstance = 128
)

// Condition is the node's SymrouteVerified condition; nil when it has none.
func Condition(node *corev1.Node) *corev1.NodeCondition {
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == ConditionType {
			return &node.Status.Conditions[i]
		}
	}
	return nil
}

// conditionFor is the Node condition s calls for; ok is false when the node should carry none (no policy
// selects it).
func conditionFor(s nodeStatus) (c corev1.NodeCondition, ok bool) {
	if s.Result == "" || s.Result == fleet.Removed {
		return corev1.NodeCondition{}, false
	}
	c = corev1.NodeCondition{Type: ConditionType, Status: corev1.ConditionFalse, Reason: string(s.Result),
		Message:            truncate(fmt.Sprintf("policy %s generation %d: %s", s.Policy, s.AppliedGeneration, oneLine(s.Message)), maxNote),
		LastTransitionTime: metav1.NewTime(s.LastTransitionTime)}
	if s.Result == fleet.Verified {
		c.Status = corev1.ConditionTrue
	}
	return c, true
}

// conditionPatch is the strategic merge patch that sets the node's condition to what s calls for, or removes it;
// nil when the node carries it already (a condition written on every verify would be a write per node per event,
// and every agent watches nothing of it anyway).
func conditionPatch(node *corev1.Node, s nodeStatus, now time.Time) []byte {
	want, keep := conditionFor(s)
	have := Condition(node)
	var item map[string]any
	switch {
	case !keep && have == nil:
		return nil
	case !keep:
		item = map[string]any{"type": ConditionType, "$patch": "delete"}
	case have != nil && have.Status == want.Status && have.Reason == want.Reason && have.Message == want.Message:
		return nil
	default:
		want.LastHeartbeatTime = metav1.NewTime(now)
		b, _ := json.Marshal(want)
		json.Unmarshal(b, &item)
	}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": []any{item}}})
	return patch
}

// eventFor is the Event a transition from old to s calls for; ok is false when what the state says did not
// change (a verify that found the same).
func eventFor(old, s nodeStatus) (kind, reason, action, note string, ok bool) {
	if s.Result == old.Result && s.Policy == old.Policy && s.AppliedGeneration == old.AppliedGeneration {
		return "", "", "", "", false
	}
	kind, action = corev1.EventTypeNormal, "Apply"
	switch s.Result {
	case fleet.Verified:
		if old.Result == fleet.Drifted && old.AppliedGeneration == s.AppliedGeneration {
			action = "Verify"
		}
	case fleet.Drifted:
		kind, action = corev1.EventTypeWarning, "Verify"
	case fleet.RolledBack, fleet.Invalid:
		kind = corev1.EventTypeWarning
	case fleet.Removed:
		action = "Remove"
	}
	note = s.Message
	if s.Policy != "" {
		note = fmt.Sprintf("policy %s generation %d: %s", s.Policy, s.AppliedGeneration, s.Message)
	}
	return kind, string(s.Result), action, truncate(note, maxNote), true
}

// oneLine puts a message's lines on one line, for a condition's message, which tools show on one: a description
// that no longer holds says why on the lines after its first.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut-- // back to the start of the rune the cut would split
	}
	return s[:cut] + "..."
}

// report puts s on the Node: its condition, and an Event when the state changed. A failure is returned, for Run
// to log: the RoutingNodeState, written first, is the record; these are views of it, and a condition not written
// is written at the next verify.
func (a *Agent) report(ctx context.Context, old, s nodeStatus) error {
	errs := []error{a.syncCondition(ctx, s)}
	if kind, reason, action, note, ok := eventFor(old, s); ok {
		errs = append(errs, a.event(ctx, kind, reason, action, note))
	}
	return errors.Join(errs...)
}

// event writes an Event about the agent's Node.
func (a *Agent) event(ctx context.Context, kind, reason, action, note string) error {
	node, err := a.Kube.CoreV1().Nodes().Get(ctx, a.Node, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("event on node %s: %w", a.Node, err)
	}
	ev := &eventsv1.Event{
		// A Node's Events are in the default namespace, where kubectl describe node looks for them. The API server
		// completes the name and cuts the prefix to fit, whatever the node's name's length.
		ObjectMeta:          metav1.ObjectMeta{GenerateName: node.Name + "-symroute-", Namespace: metav1.NamespaceDefault},
		EventTime:           metav1.NewMicroTime(a.now()),
		Regarding:           corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID},
		ReportingController: reportingController,
		ReportingInstance:   truncate(reportingController+"/"+node.Name, maxReportingInstance),
		Action:              action,
		Reason:              reason,
		Note:                note,
		Type:                kind,
	}
	if _, err := a.Kube.EventsV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("event on node %s: %w", node.Name, err)
	}
	return nil
}

// syncCondition brings the Node's condition in line with s, writing only when it differs. The condition the
// agent last put in place (or found there) is remembered, and the Node is read only when s calls for another:
// a verify runs after every settled change of the node's routing, and a Node is a large object to read that
// often. Run forgets it before each periodic verify, so a condition someone else changed comes back then.
func (a *Agent) syncCondition(ctx context.Context, s nodeStatus) error {
	key := conditionKey(s)
	if key == a.conditionSynced {
		return nil
	}
	node, err := a.Kube.CoreV1().Nodes().Get(ctx, a.Node, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("node %s: %w", a.Node, err)
	}
	if patch := conditionPatch(node, s, a.now()); patch != nil {
		if _, err := a.Kube.CoreV1().Nodes().PatchStatus(ctx, node.Name, patch); err != nil {
			return fmt.Errorf("node %s condition: %w", node.Name, err)
		}
	}
	a.conditionSynced = key
	return nil
}

// conditionKey says what condition s calls for, as far as conditionPatch compares it.
func conditionKey(s nodeStatus) string {
	c, keep := conditionFor(s)
	if !keep {
		return "none"
	}
	return fmt.Sprintf("%s\x00%s\x00%s", c.Status, c.Reason, c.Message)
}

// lastVerify is the agent's last verify, for its metrics.
type lastVerify struct {
	res *drift.Result // nil: the live state could not be read
	at  time.Time
	ran bool
}

// noteVerify keeps res (nil when the state could not be read) for the metrics.
func (a *Agent) noteVerify(res *drift.Result) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.verified = lastVerify{res: res, at: a.now(), ran: true}
}

// forgetVerify drops the last verify from the metrics: the node has nothing to verify any more, and an old
// result would alert on, or reassure about, a configuration no longer there.
func (a *Agent) forgetVerify() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.verified = lastVerify{}
}

// noteState keeps the node's state for the metrics.
func (a *Agent) noteState(s nodeStatus) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.state = s
}

// WriteMetrics writes the agent's metrics: verify's, under the names symroute verify --textfile writes (absent
// until the agent has verified once), and the node's state.
func (a *Agent) WriteMetrics(w io.Writer) {
	a.mu.Lock()
	v, s := a.verified, a.state
	a.mu.Unlock()
	if v.ran {
		metrics.Verify(w, v.res, v.at)
	}
	metrics.Gauge(w, "symroute_agent_result", "1 for the result the node's RoutingNodeState says, by result and policy.")
	for _, r := range []fleet.Result{fleet.Verified, fleet.Drifted, fleet.RolledBack, fleet.Invalid, fleet.Removed} {
		v := 0
		if s.Result == r {
			v = 1
		}
		fmt.Fprintf(w, "symroute_agent_result{policy=%q,result=%q} %d\n", s.Policy, r, v)
	}
	metrics.Gauge(w, "symroute_agent_applied_generation", "The generation of its policy the node applied last.")
	fmt.Fprintf(w, "symroute_agent_applied_generation{policy=%q} %d\n", s.Policy, s.AppliedGeneration)
}

// MetricsHandler serves WriteMetrics in the Prometheus text format.
func (a *Agent) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", metrics.ContentType)
		a.WriteMetrics(w)
	})
}
