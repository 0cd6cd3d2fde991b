//go:build kubetest

package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/orchestration/agent"
)

// description takes both interfaces' addresses from each node.
const description = `version: 1
interfaces:
  - name: eth-a
    gateway: 192.168.1.1
  - name: eth-b
    gateway: 10.0.0.254
`

var (
	edge = map[string]string{"role": "edge"}
	db   = map[string]string{"role": "db"}
)

func edgePolicy(desc string, maxUnavailable any) map[string]any {
	spec := map[string]any{"description": desc, "nodeSelector": map[string]any{"matchLabels": map[string]any{"role": "edge"}}}
	if maxUnavailable != nil {
		spec["rollout"] = map[string]any{"maxUnavailable": maxUnavailable}
	}
	return spec
}

// want checks the fields of a status that the test names, by their JSON values.
func want(t *testing.T, what string, status map[string]any, fields map[string]any) {
	t.Helper()
	if status == nil {
		t.Errorf("%s: no object", what)
		return
	}
	for k, v := range fields {
		if got := fmt.Sprint(status[k]); got != fmt.Sprint(v) {
			t.Errorf("%s: %s is %q, want %q (status %v)", what, k, got, fmt.Sprint(v), status)
		}
	}
}

func wantCounts(t *testing.T, h *fakeHost, node string, applied, removed int) {
	t.Helper()
	if a, r := h.counts(); a != applied || r != removed {
		t.Errorf("%s: applied %d times and removed %d, want %d and %d", node, a, r, applied, removed)
	}
}

// edgeNodes are n nodes labelled role=edge, n1 to nN, each with its agent and its machine.
func (c *cluster) edgeNodes(t *testing.T, n int) ([]*agent.Agent, []*fakeHost) {
	var agents []*agent.Agent
	var hosts []*fakeHost
	for i := 1; i <= n; i++ {
		c.node(t, fmt.Sprintf("n%d", i), edge)
		hosts = append(hosts, newHost(i))
		agents = append(agents, c.newAgent(t, fmt.Sprintf("n%d", i), hosts[i-1]))
	}
	return agents, hosts
}

// TestAgentsFollowTheirPolicyByLabels: of three nodes, the two the policy selects apply it and verify, the third
// is left alone; each node's state and the policy's counts say so. A node relabelled out of the selector removes
// symroute's configuration, and a second policy selecting a node is a conflict that changes nothing there.
func TestAgentsFollowTheirPolicyByLabels(t *testing.T) {
	c := startCluster(t)
	c.node(t, "n1", edge)
	c.node(t, "n2", edge)
	c.node(t, "n3", db)
	h1, h2, h3 := newHost(1), newHost(2), newHost(3)
	a1, a2, a3 := c.newAgent(t, "n1", h1), c.newAgent(t, "n2", h2), c.newAgent(t, "n3", h3)
	c.policy(t, "edge", edgePolicy(description, nil))

	reconcile(t, a1, a2, a3)
	wantCounts(t, h1, "n1", 1, 0)
	wantCounts(t, h2, "n2", 1, 0)
	wantCounts(t, h3, "n3", 0, 0)
	if h1.applied[0] != description {
		t.Errorf("n1 applied %q, want the policy's description", h1.applied[0])
	}
	for _, n := range []string{"n1", "n2"} {
		s := c.nodeState(t, n)
		want(t, n, s, map[string]any{"policy": "edge", "appliedGeneration": 1, "result": "Verified", "message": "verify passes"})
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(s["lastTransitionTime"])); err != nil {
			t.Errorf("%s: lastTransitionTime: %v", n, err)
		}
	}
	if s := c.nodeState(t, "n3"); s != nil {
		t.Errorf("n3, which no policy selects, has a state: %v", s)
	}
	want(t, "policy edge", c.policyStatus(t, "edge"), map[string]any{"observedGeneration": 1, "nodes": 2, "verified": 2, "failed": 0, "rollout": "Complete"})

	// Once applied, a generation is not applied again, and nothing is written again: each write would be an event
	// every agent's Run reconciles on.
	before := c.resourceVersions(t)
	reconcile(t, a1, a2, a3)
	wantCounts(t, h1, "n1", 1, 0)
	if after := c.resourceVersions(t); after != before {
		t.Errorf("a run with nothing to do wrote: resource versions %s, then %s", before, after)
	}

	c.relabel(t, "n2", db)
	reconcile(t, a1, a2, a3)
	wantCounts(t, h2, "n2", 1, 1)
	wantCounts(t, h1, "n1", 1, 0)
	wantCounts(t, h3, "n3", 0, 0)
	want(t, "n2 relabelled", c.nodeState(t, "n2"), map[string]any{"policy": "", "appliedGeneration": 0, "result": "Removed"})
	want(t, "policy edge", c.policyStatus(t, "edge"), map[string]any{"nodes": 1, "verified": 1, "rollout": "Complete"})
	reconcile(t, a2)
	wantCounts(t, h2, "n2", 1, 1) // removed once, not on every run

	c.policy(t, "everything", map[string]any{"description": description})
	reconcile(t, a1)
	wantCounts(t, h1, "n1", 1, 0)
	s := c.nodeState(t, "n1")
	want(t, "n1 in two policies", s, map[string]any{"result": "Invalid", "policy": "edge", "appliedGeneration": 1})
	if msg := fmt.Sprint(s["message"]); !strings.Contains(msg, "edge and everything") {
		t.Errorf("n1's message does not name both policies: %q", msg)
	}
	// Once the conflict is gone, n1 applies its policy again and its state says how that went.
	c.deletePolicy(t, "everything")
	reconcile(t, a1)
	wantCounts(t, h1, "n1", 2, 0)
	want(t, "n1 after the conflict", c.nodeState(t, "n1"), map[string]any{"result": "Verified", "policy": "edge", "appliedGeneration": 1})
}

// TestDeletingThePolicyRemovesItFromEveryNode: every node that applied a deleted policy removes its configuration
// and says so; the policy has no status left to write.
func TestDeletingThePolicyRemovesItFromEveryNode(t *testing.T) {
	c := startCluster(t)
	agents, hosts := c.edgeNodes(t, 3)
	c.policy(t, "edge", edgePolicy(description, "100%"))
	reconcile(t, agents...)
	want(t, "policy edge", c.policyStatus(t, "edge"), map[string]any{"nodes": 3, "verified": 3, "rollout": "Complete"})

	c.deletePolicy(t, "edge")
	reconcile(t, agents...)
	for i, h := range hosts {
		n := fmt.Sprintf("n%d", i+1)
		wantCounts(t, h, n, 1, 1)
		want(t, n, c.nodeState(t, n), map[string]any{"result": "Removed", "policy": ""})
	}
}

// TestValidationProblemsShowInStatus: a description that holds on no node puts its problems, with their lines, in
// the policy's status and is applied nowhere; once fixed, a node whose own links lack an address the policy takes
// from them is Invalid with a message naming the link, while the others apply.
func TestValidationProblemsShowInStatus(t *testing.T) {
	c := startCluster(t)
	agents, hosts := c.edgeNodes(t, 3)
	broken := strings.Replace(description, "gateway: 10.0.0.254", "gateway: 10.0.0.999", 1)
	c.policy(t, "edge", edgePolicy(broken, "100%"))
	reconcile(t, agents...)
	for i, h := range hosts {
		wantCounts(t, h, fmt.Sprintf("n%d", i+1), 0, 0)
	}
	status := c.policyStatus(t, "edge")
	problems, _ := status["problems"].([]any)
	if len(problems) == 0 {
		t.Fatalf("no problems in the policy's status: %v", status)
	}
	want(t, "the problem", problems[0].(map[string]any), map[string]any{"severity": "error", "line": 6, "path": "interfaces[1].gateway"})
	s := c.nodeState(t, "n1")
	want(t, "n1", s, map[string]any{"result": "Invalid", "policy": "edge", "appliedGeneration": 0})
	if msg := fmt.Sprint(s["message"]); !strings.Contains(msg, "line 6: interfaces[1].gateway") {
		t.Errorf("n1's message: %q", msg)
	}

	hosts[2].addresses = map[string][]netip.Prefix{"eth-a": hosts[2].addresses["eth-a"]}
	c.policy(t, "edge", edgePolicy(description, "100%"))
	reconcile(t, agents...)
	wantCounts(t, hosts[0], "n1", 1, 0)
	wantCounts(t, hosts[1], "n2", 1, 0)
	wantCounts(t, hosts[2], "n3", 0, 0)
	s = c.nodeState(t, "n3")
	want(t, "n3", s, map[string]any{"result": "Invalid", "policy": "edge"})
	if msg := fmt.Sprint(s["message"]); !strings.Contains(msg, "eth-b") {
		t.Errorf("n3's message does not name eth-b: %q", msg)
	}
	status = c.policyStatus(t, "edge")
	want(t, "policy edge", status, map[string]any{"observedGeneration": 2, "nodes": 3, "verified": 2, "failed": 0, "rollout": "Progressing"})
	if problems, _ := status["problems"].([]any); len(problems) != 0 {
		t.Errorf("the fixed description still has problems in the policy's status, or n3's are there: %v", problems)
	}
}

// TestMaxUnavailableHoldsTheSecondNode: with a budget of one, while the first node applies (and renews its Lease
// past the Lease's duration), the second does not start; once the first is done, it does.
func TestMaxUnavailableHoldsTheSecondNode(t *testing.T) {
	c := startCluster(t)
	agents, hosts := c.edgeNodes(t, 2)
	a1, a2, h1, h2 := agents[0], agents[1], hosts[0], hosts[1]
	h1.block, h1.started = make(chan struct{}), make(chan struct{}, 1)
	a1.LeaseDuration, a2.LeaseDuration = 3*time.Second, 3*time.Second
	c.policy(t, "edge", edgePolicy(description, 1))

	done := make(chan error, 1)
	go func() { done <- a1.Reconcile(t.Context()) }()
	select {
	case <-h1.started:
	case err := <-done:
		t.Fatalf("n1 did not apply: %v", err)
	}
	lease, err := c.admin.Kube.CoordinationV1().Leases(namespace).Get(t.Context(), "symroute-edge-0", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "n1" {
		t.Fatalf("n1 applies without holding the rollout's lease: %+v %v", lease, err)
	}
	// Longer than the lease's duration: only n1's renewals keep n2 out now.
	time.Sleep(4 * time.Second)
	reconcile(t, a2)
	wantCounts(t, h2, "n2", 0, 0)
	want(t, "policy edge", c.policyStatus(t, "edge"), map[string]any{"nodes": 2, "verified": 0, "rollout": "Progressing"})

	close(h1.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want(t, "n1", c.nodeState(t, "n1"), map[string]any{"result": "Verified", "appliedGeneration": 1})
	reconcile(t, a2)
	wantCounts(t, h2, "n2", 1, 0)
	want(t, "policy edge", c.policyStatus(t, "edge"), map[string]any{"verified": 2, "rollout": "Complete"})
}

// TestFailedApplyStopsTheRollout: a node whose apply rolls back records it, with verify's findings; no other node
// starts that generation, the policy says Stopped, and the next generation starts again.
func TestFailedApplyStopsTheRollout(t *testing.T) {
	c := startCluster(t)
	agents, hosts := c.edgeNodes(t, 3)
	hosts[0].outcome = agent.Outcome{Message: "gateway 10.0.0.254 did not answer; rolled back",
		Findings: []drift.Finding{{Kind: "rule-missing", Interface: "eth-b", Message: "no rule from 10.0.0.11", Line: 5, Column: 5}}}
	c.policy(t, "edge", edgePolicy(description, 1))

	reconcile(t, agents...)
	wantCounts(t, hosts[0], "n1", 1, 0)
	wantCounts(t, hosts[1], "n2", 0, 0)
	wantCounts(t, hosts[2], "n3", 0, 0)
	s := c.nodeState(t, "n1")
	want(t, "n1", s, map[string]any{"result": "RolledBack", "appliedGeneration": 1, "message": "gateway 10.0.0.254 did not answer; rolled back"})
	if findings, _ := s["findings"].([]any); len(findings) != 1 {
		t.Errorf("n1's findings: %v", s["findings"])
	} else {
		want(t, "n1's finding", findings[0].(map[string]any), map[string]any{"kind": "rule-missing", "interface": "eth-b", "line": 5})
	}
	want(t, "policy edge", c.policyStatus(t, "edge"), map[string]any{"nodes": 3, "verified": 0, "failed": 1, "rollout": "Stopped"})
	// The slot is free again: the rollback, not a held lease, is what stops the rollout.
	lease, err := c.admin.Kube.CoordinationV1().Leases(namespace).Get(t.Context(), "symroute-edge-0", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity != nil {
		t.Errorf("the lease after n1's rollback: %+v %v", lease.Spec, err)
	}
	reconcile(t, agents...) // n1 does not retry the generation it rolled back either
	wantCounts(t, hosts[0], "n1", 1, 0)

	hosts[0].outcome = agent.Outcome{Verified: true}
	c.policy(t, "edge", edgePolicy(description+"  # generation 2\n", 1))
	reconcile(t, agents...)
	wantCounts(t, hosts[0], "n1", 2, 0)
	wantCounts(t, hosts[1], "n2", 1, 0)
	wantCounts(t, hosts[2], "n3", 1, 0)
	want(t, "policy edge", c.policyStatus(t, "edge"), map[string]any{"observedGeneration": 2, "verified": 3, "failed": 0, "rollout": "Complete"})

	// An apply that cannot say how it ended is an error of the agent's, recorded as a rollback that stops the
	// rollout; the slot stays taken until it expires, since the node's state is not known.
	hosts[0].err = errors.New("networkd did not answer")
	c.policy(t, "edge", edgePolicy(description+"  # generation 3\n", 1))
	if err := agents[0].Reconcile(t.Context()); err == nil || !strings.Contains(err.Error(), "networkd did not answer") {
		t.Errorf("n1's reconcile: %v, want the apply's error", err)
	}
	want(t, "n1", c.nodeState(t, "n1"), map[string]any{"result": "RolledBack", "appliedGeneration": 3,
		"message": "the apply of generation 3 failed: networkd did not answer"})
	reconcile(t, agents[1:]...)
	wantCounts(t, hosts[1], "n2", 1, 0)
	wantCounts(t, hosts[2], "n3", 1, 0)
	if lease, err := c.admin.Kube.CoordinationV1().Leases(namespace).Get(t.Context(), "symroute-edge-0", metav1.GetOptions{}); err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "n1" {
		t.Errorf("the lease after n1's failed apply: %v", err)
	}
}

// TestALeaseTakenOverIsNotReleased: when another node took the slot while this one applied (its renewals did not
// reach the API server), this node's release leaves that node's hold alone, and the apply's result is recorded.
func TestALeaseTakenOverIsNotReleased(t *testing.T) {
	c := startCluster(t)
	agents, hosts := c.edgeNodes(t, 1)
	a1, h1 := agents[0], hosts[0]
	h1.block, h1.started = make(chan struct{}), make(chan struct{}, 1)
	c.policy(t, "edge", edgePolicy(description, 1))

	done := make(chan error, 1)
	go func() { done <- a1.Reconcile(t.Context()) }()
	<-h1.started
	leases := c.admin.Kube.CoordinationV1().Leases(namespace)
	lease, err := leases.Get(t.Context(), "symroute-edge-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := "n9"
	lease.Spec.HolderIdentity = &other
	if _, err := leases.Update(t.Context(), lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	close(h1.block)
	if err := <-done; err != nil {
		t.Fatalf("n1's reconcile: %v", err)
	}
	want(t, "n1", c.nodeState(t, "n1"), map[string]any{"result": "Verified", "appliedGeneration": 1})
	if lease, err = leases.Get(t.Context(), "symroute-edge-0", metav1.GetOptions{}); err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "n9" {
		t.Errorf("the lease n9 took: %+v %v", lease.Spec, err)
	}
}

// TestRunActsOnWatchedChanges: agents running their loop, with a resync and a verify period longer than the test,
// act on the API server's events alone: a new policy rolls out node after node (the second starts when the first
// frees the slot), a node relabelled out of the selector removes, and deleting the policy removes from the rest.
// A change of the node's routing (the netlink watch's signal) makes the agent verify: a rule gone shows as
// Drifted in the node's state.
func TestRunActsOnWatchedChanges(t *testing.T) {
	c := startCluster(t)
	agents, hosts := c.edgeNodes(t, 2)
	changes := make(chan struct{}, 1)
	agents[0].Changes, agents[0].VerifyEvery = changes, time.Hour
	agents[1].VerifyEvery = time.Hour
	ctx, cancel := context.WithCancel(t.Context())
	var running sync.WaitGroup
	t.Cleanup(func() { cancel(); running.Wait() }) // before the API server stops
	for _, a := range agents {
		running.Go(func() {
			if err := a.Run(ctx, time.Hour); err != nil {
				t.Errorf("%s: %v", a.Node, err)
			}
		})
	}
	settled := func(what string, h *fakeHost, applied, removed int) {
		t.Helper()
		eventually(t, what, func() bool { a, r := h.counts(); return a == applied && r == removed })
	}
	c.policy(t, "edge", edgePolicy(description, 1))
	settled("n1 applying", hosts[0], 1, 0)
	settled("n2 applying", hosts[1], 1, 0)
	eventually(t, "the rollout complete", func() bool { return fmt.Sprint(c.policyStatus(t, "edge")["rollout"]) == "Complete" })

	hosts[0].drift(drift.Finding{Kind: drift.RuleMissing, Interface: "eth-a", Message: "rule 20010 is missing"})
	changes <- struct{}{}
	eventually(t, "n1 drifted after a change of its routing", func() bool { return c.nodeState(t, "n1")["result"] == "Drifted" })
	if s := c.nodeState(t, "n2"); s["result"] != "Verified" {
		t.Errorf("n2, whose routing did not change, says %v", s["result"])
	}

	c.relabel(t, "n2", db)
	settled("n2 removing", hosts[1], 1, 1)
	c.deletePolicy(t, "edge")
	settled("n1 removing", hosts[0], 1, 1)
	wantCounts(t, hosts[1], "n2", 1, 1)
}

// TestRunDecidesFromItsWatchCaches: an event reaches every agent, and under Run an agent decides from its watch
// caches, not from reads of the API server: when n1's state turns Drifted, n2 (whose own state does not change)
// reconciles on that event with no get or list request at all. Reconcile called alone reads the API server, as
// a control, so the count can see reads.
func TestRunDecidesFromItsWatchCaches(t *testing.T) {
	c := startCluster(t)
	c.node(t, "n1", edge)
	c.node(t, "n2", edge)
	h1, h2 := newHost(1), newHost(2)
	a1 := c.newAgent(t, "n1", h1)
	config := c.nodeConfig(t, "n2")
	var n2reads reads
	config.WrapTransport = n2reads.wrap
	a2 := &agent.Agent{Clients: clients(t, config), Node: "n2", Namespace: namespace, Host: h2,
		Logf: func(format string, args ...any) { t.Logf("n2: "+format, args...) }}
	changes := make(chan struct{}, 1)
	a1.Changes = changes
	for _, a := range []*agent.Agent{a1, a2} {
		a.VerifyEvery = time.Hour
	}
	reconciles := make(chan string, 100)
	a2.Logf = func(format string, args ...any) {
		t.Logf("n2: "+format, args...)
		reconciles <- fmt.Sprintf(format, args...)
	}

	before := n2reads.n.Load()
	reconcile(t, a2)
	if n2reads.n.Load() == before {
		t.Fatal("a Reconcile outside Run sent no read: the count cannot see reads")
	}

	ctx, cancel := context.WithCancel(t.Context())
	var running sync.WaitGroup
	t.Cleanup(func() { cancel(); running.Wait() })
	for _, a := range []*agent.Agent{a1, a2} {
		running.Go(func() {
			if err := a.Run(ctx, time.Hour); err != nil {
				t.Errorf("%s: %v", a.Node, err)
			}
		})
	}
	c.policy(t, "edge", edgePolicy(description, 2))
	eventually(t, "the rollout complete", func() bool { return fmt.Sprint(c.policyStatus(t, "edge")["rollout"]) == "Complete" })
	// n2 logs each reconcile that has nothing to do ("generation 1 is applied here"): drain them, then count.
	time.Sleep(time.Second)
	for len(reconciles) > 0 {
		<-reconciles
	}
	before = n2reads.n.Load()
	h1.drift(drift.Finding{Kind: drift.RuleMissing, Interface: "eth-a", Message: "rule 20010 is missing"})
	changes <- struct{}{}
	eventually(t, "n1 drifted", func() bool { return c.nodeState(t, "n1")["result"] == "Drifted" })
	// The counts follow (by n1's write or n2's), and each write is one more event n2 reconciles on: the count
	// covers them all.
	eventually(t, "the policy's counts after the drift", func() bool { return fmt.Sprint(c.policyStatus(t, "edge")["verified"]) == "1" })
	time.Sleep(2 * time.Second)
	select {
	case line := <-reconciles:
		if !strings.Contains(line, "is applied here") {
			t.Errorf("n2 reconciled to %q", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("n2 did not reconcile on n1's state")
	}
	if n := n2reads.n.Load() - before; n != 0 {
		t.Errorf("n2 sent %d get or list requests reconciling on n1's state, want none (its caches hold everything)", n)
	}
}

// TestThePolicySetsTheChecks: a policy's spec.checks reach the node's apply (the timeout and the gateways to
// skip), and a skipGateways entry that is not an interface of the description makes the policy Invalid on the
// node, naming it, with nothing applied.
func TestThePolicySetsTheChecks(t *testing.T) {
	c := startCluster(t)
	agents, hosts := c.edgeNodes(t, 1)
	spec := edgePolicy(description, nil)
	spec["checks"] = map[string]any{"timeoutSeconds": int64(45), "skipGateways": []any{"eth-9"}}
	c.policy(t, "edge", spec)
	reconcile(t, agents...)
	wantCounts(t, hosts[0], "n1", 0, 0)
	s := c.nodeState(t, "n1")
	if s["result"] != "Invalid" || !strings.Contains(fmt.Sprint(s["message"]), "spec.checks.skipGateways names eth-9") {
		t.Errorf("a skipGateways entry the description lacks: %v", s)
	}

	spec["checks"] = map[string]any{"timeoutSeconds": int64(45), "skipGateways": []any{"eth-b"}}
	c.policy(t, "edge", spec)
	reconcile(t, agents...)
	wantCounts(t, hosts[0], "n1", 1, 0)
	if got := hosts[0].checks[0]; got.Timeout != 45*time.Second || !slices.Equal(got.SkipGateways, []string{"eth-b"}) {
		t.Errorf("the apply's checks: %+v, want 45s and eth-b skipped", got)
	}
	want(t, "n1", c.nodeState(t, "n1"), map[string]any{"result": "Verified", "appliedGeneration": 2})
}
