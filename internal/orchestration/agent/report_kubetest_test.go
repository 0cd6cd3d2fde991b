//go:build kubetest

package agent_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/orchestration/agent"
)

// condition is the node's SymrouteVerified condition; nil when it has none.
func (c *cluster) condition(t *testing.T, node string) *corev1.NodeCondition {
	t.Helper()
	n, err := c.admin.Kube.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return agent.Condition(n)
}

// events are the Events about node, oldest first.
func (c *cluster) events(t *testing.T, node string) []eventsv1.Event {
	t.Helper()
	list, err := c.admin.Kube.EventsV1().Events(metav1.NamespaceDefault).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "Node" && e.Regarding.Name == node {
			out = append(out, e)
		}
	}
	// Listed by name, which the API server generates: the order they happened in is their time's.
	sort.SliceStable(out, func(i, j int) bool { return out[i].EventTime.Before(&out[j].EventTime) })
	return out
}

func wantCondition(t *testing.T, what string, got *corev1.NodeCondition, status corev1.ConditionStatus, reason string) {
	t.Helper()
	if got == nil || got.Status != status || got.Reason != reason || !strings.Contains(got.Message, "policy edge generation 1") {
		t.Errorf("%s: condition %+v, want status %s reason %s naming the policy", what, got, status, reason)
	}
}

func wantEvents(t *testing.T, what string, got []eventsv1.Event, reasons ...string) {
	t.Helper()
	var have []string
	for _, e := range got {
		have = append(have, e.Type+"/"+e.Reason)
	}
	if strings.Join(have, " ") != strings.Join(reasons, " ") {
		t.Errorf("%s: events %v, want %v", what, have, reasons)
	}
}

func metricsOf(a *agent.Agent) string {
	var b strings.Builder
	a.WriteMetrics(&b)
	return b.String()
}

// TestDriftShowsOnTheNodeInEventsAndMetrics: the agent, as the service account, reports its node beyond the
// RoutingNodeState. An apply that verified sets the Node's SymrouteVerified condition True and writes a Normal
// Event; a verify that finds a rule missing turns the state to Drifted, the condition False with reason Drifted,
// a Warning Event, and the metrics (verify's names, as the textfile has them) say so; the drift mended, all of it
// returns to Verified. A verify that finds the same again writes nothing. Removing the policy removes the
// condition.
func TestDriftShowsOnTheNodeInEventsAndMetrics(t *testing.T) {
	c := startCluster(t)
	c.node(t, "n1", edge)
	h := newHost(1)
	a := c.newAgent(t, "n1", h)
	c.policy(t, "edge", edgePolicy(description, nil))
	if m := metricsOf(a); strings.Contains(m, "symroute_verify_success") {
		t.Errorf("verify metrics before any verify:\n%s", m)
	}

	reconcile(t, a)
	wantCondition(t, "applied", c.condition(t, "n1"), corev1.ConditionTrue, "Verified")
	wantEvents(t, "applied", c.events(t, "n1"), "Normal/Verified")

	// A condition lost (someone deleted it, an agent from before conditions) comes back, though the state, still
	// Verified, is not written again.
	if _, err := c.admin.Kube.CoreV1().Nodes().PatchStatus(t.Context(), "n1", []byte(`{"status":{"conditions":[{"type":"SymrouteVerified","$patch":"delete"}]}}`)); err != nil {
		t.Fatal(err)
	}
	if c.condition(t, "n1") != nil {
		t.Fatal("the condition was not deleted")
	}
	// The agent remembers the condition it put there and does not read the Node on every verify: a change of
	// someone else's is mended by its next periodic verify, or, as here, by an agent started afresh.
	if err := a.Verify(t.Context()); err != nil {
		t.Fatal(err)
	}
	if c.condition(t, "n1") != nil {
		t.Error("a verify read the Node although the state, and so the condition it calls for, did not change")
	}
	a = c.newAgent(t, "n1", h)
	if err := a.Verify(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantCondition(t, "verified again", c.condition(t, "n1"), corev1.ConditionTrue, "Verified")
	wantEvents(t, "verified again", c.events(t, "n1"), "Normal/Verified")

	h.drift(drift.Finding{Kind: drift.RuleMissing, Interface: "eth-a", Message: "rule 20010 from 192.168.1.11 lookup 1000 is missing"})
	if err := a.Verify(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := c.nodeState(t, "n1")
	want(t, "drifted", s, map[string]any{"policy": "edge", "appliedGeneration": 1, "result": "Drifted"})
	if msg, _ := s["message"].(string); !strings.Contains(msg, "rule 20010 from 192.168.1.11 lookup 1000 is missing") {
		t.Errorf("drifted: message %q does not name the finding", msg)
	}
	if f, _ := s["findings"].([]any); len(f) != 1 {
		t.Errorf("drifted: findings %v, want the one", s["findings"])
	}
	wantCondition(t, "drifted", c.condition(t, "n1"), corev1.ConditionFalse, "Drifted")
	wantEvents(t, "drifted", c.events(t, "n1"), "Normal/Verified", "Warning/Drifted")
	m := metricsOf(a)
	for _, line := range []string{"symroute_verify_success 0\n", `symroute_verify_findings{kind="rule_missing"} 1`, `symroute_verify_interface_ok{interface="eth-a"} 0`,
		`symroute_agent_result{policy="edge",result="Drifted"} 1`, `symroute_agent_result{policy="edge",result="Verified"} 0`, `symroute_agent_applied_generation{policy="edge"} 1`} {
		if !strings.Contains(m, line) {
			t.Errorf("drifted: metrics lack %q:\n%s", line, m)
		}
	}
	want(t, "policy while drifted", c.policyStatus(t, "edge"), map[string]any{"nodes": 1, "verified": 0, "drifted": 1, "rollout": "Complete"})

	before := c.resourceVersions(t)
	if err := a.Verify(t.Context()); err != nil {
		t.Fatal(err)
	}
	if after := c.resourceVersions(t); after != before {
		t.Errorf("a verify that found the same drift again wrote: resource versions %s, then %s", before, after)
	}
	wantEvents(t, "the same drift again", c.events(t, "n1"), "Normal/Verified", "Warning/Drifted")

	// A description that no longer holds on the node (a link lost its address) is drift too, saying why.
	h.mu.Lock()
	h.verifyErr = fmt.Errorf("%w:\nline 3: interfaces[0]: eth-a has no address", agent.ErrDoesNotHold)
	h.mu.Unlock()
	if err := a.Verify(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := c.nodeState(t, "n1"); s["result"] != "Drifted" || !strings.Contains(fmt.Sprint(s["message"]), "eth-a has no address") {
		t.Errorf("a description that no longer holds: %v", s)
	}
	h.mu.Lock()
	h.verifyErr = nil
	h.mu.Unlock()

	h.drift()
	if err := a.Verify(t.Context()); err != nil {
		t.Fatal(err)
	}
	want(t, "mended", c.nodeState(t, "n1"), map[string]any{"result": "Verified", "appliedGeneration": 1})
	wantCondition(t, "mended", c.condition(t, "n1"), corev1.ConditionTrue, "Verified")
	wantEvents(t, "mended", c.events(t, "n1"), "Normal/Verified", "Warning/Drifted", "Normal/Verified")
	if m := metricsOf(a); !strings.Contains(m, "symroute_verify_success 1\n") || !strings.Contains(m, `symroute_agent_result{policy="edge",result="Verified"} 1`) {
		t.Errorf("mended: metrics\n%s", m)
	}
	if applied, _ := h.counts(); applied != 1 {
		t.Errorf("verify applied: %d applies, want the first only", applied)
	}

	c.deletePolicy(t, "edge")
	reconcile(t, a)
	if cond := c.condition(t, "n1"); cond != nil {
		t.Errorf("the policy is gone but the node keeps %+v", cond)
	}
	wantEvents(t, "removed", c.events(t, "n1"), "Normal/Verified", "Warning/Drifted", "Normal/Verified", "Normal/Removed")
}

// TestAnAgentWritesOnlyItsOwnNode: RBAC lets the service account write node states and Node conditions; the
// shipped admission policy narrows that to the node the agent's token is bound to. n1's agent may write its own
// state and condition, and is refused n2's state, n2's condition, and its own Node's Ready condition; a token bound
// to no node writes no state at all.
func TestAnAgentWritesOnlyItsOwnNode(t *testing.T) {
	c := startCluster(t)
	c.node(t, "n1", edge)
	c.node(t, "n2", edge)
	n1 := c.nodeClients(t, "n1")
	ctx := t.Context()
	createState := func(cl agent.Clients, name string) error {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(agent.NodeStateResource.GroupVersion().String())
		u.SetKind("RoutingNodeState")
		u.SetName(name)
		_, err := cl.Dynamic.Resource(agent.NodeStateResource).Create(ctx, u, metav1.CreateOptions{})
		return err
	}
	patchCondition := func(cl agent.Clients, node, kind string) error {
		patch := fmt.Sprintf(`{"status":{"conditions":[{"type":%q,"status":"False","reason":"Test","message":"test","lastHeartbeatTime":"2026-11-24T00:00:00Z","lastTransitionTime":"2026-11-24T00:00:00Z"}]}}`, kind)
		_, err := cl.Kube.CoreV1().Nodes().PatchStatus(ctx, node, []byte(patch))
		return err
	}
	refused := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) {
			t.Errorf("%s: %v, want a refusal", what, err)
		}
	}
	// The admission policy takes effect once the API server has compiled it: until n2's state is refused, it has
	// not. The first refusal is the policy's (RBAC allows the create), so the waiting cannot hide a failure.
	eventually(t, "the admission policy in force", func() bool {
		err := createState(n1, "n2")
		if err == nil {
			c.admin.Dynamic.Resource(agent.NodeStateResource).Delete(ctx, "n2", metav1.DeleteOptions{})
		}
		return err != nil
	})
	if err := createState(n1, "n2"); !strings.Contains(fmt.Sprint(err), `may write only its own node's routingnodestates, not "n2"`) {
		t.Errorf("n1 creating n2's state: %v", err)
	}
	if err := createState(n1, "n1"); err != nil {
		t.Errorf("n1 creating its own state: %v", err)
	}
	if err := patchCondition(n1, "n1", string(agent.ConditionType)); err != nil {
		t.Errorf("n1 setting its own condition: %v", err)
	}
	refused("n1 setting n2's condition", patchCondition(n1, "n2", string(agent.ConditionType)))
	refused("n1 setting its own Ready condition", patchCondition(n1, "n1", "Ready"))
	_, err := n1.Kube.CoreV1().Nodes().PatchStatus(ctx, "n1", []byte(`{"metadata":{"labels":{"role":"db"}}}`))
	refused("n1 relabelling its Node through nodes/status", err)
	_, err = n1.Kube.CoreV1().Nodes().PatchStatus(ctx, "n1", []byte(`{"status":{"declaredFeatures":["FakeFeature"]}}`))
	refused("n1 declaring a feature of its Node", err)
	if n, err := c.admin.Kube.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{}); err != nil || n.Labels["role"] != "edge" {
		t.Errorf("n1's labels after the refused patch: %v %v", n.Labels, err)
	}
	refused("a token bound to no node creating a state", createState(c.agent, "n3"))
}
