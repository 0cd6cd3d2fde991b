package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/fleet"
)

// Rollout is a policy's status.rollout.
type Rollout string

const (
	Progressing Rollout = "Progressing"
	Complete    Rollout = "Complete"
	Stopped     Rollout = "Stopped"
)

// Summary is a policy's status counts over the nodes it selects.
type Summary struct {
	Nodes, Verified, Drifted, Failed int
	Rollout                          Rollout
}

// Summarize counts, among the nodes p selects (selected, by name), those whose state says they verify p's
// generation and those that rolled it back. One rollback stops the rollout (fleet.Next lets no other node start
// that generation); it is complete when every selected node verifies it. A node whose own addresses make the
// description invalid keeps it progressing: its state says why, and the operator fixes the node or the selector.
func Summarize(p fleet.Policy, selected []string, states []fleet.NodeState) Summary {
	byNode := map[string]fleet.NodeState{}
	for _, s := range states {
		byNode[s.Node] = s
	}
	sum := Summary{Nodes: len(selected)}
	for _, node := range selected {
		s, ok := byNode[node]
		if !ok || s.Policy != p.Name || s.AppliedGeneration != p.Generation {
			continue
		}
		switch s.Result {
		case fleet.Verified:
			sum.Verified++
		case fleet.Drifted:
			sum.Drifted++
		case fleet.RolledBack:
			sum.Failed++
		}
	}
	switch {
	case sum.Failed > 0:
		sum.Rollout = Stopped
	case sum.Verified+sum.Drifted == sum.Nodes:
		sum.Rollout = Complete // every node applied it; a drifted node is for the operator, not the rollout
	default:
		sum.Rollout = Progressing
	}
	return sum
}

// policyStatus is the whole status a policy's generation has: the counts and the description's problems that
// hold on every node (ParseWith without a node's addresses), each with its line.
func policyStatus(p fleet.Policy, sum Summary) map[string]any {
	_, rep := description.ParseWith([]byte(p.Description), description.Options{FromNode: true})
	return map[string]any{
		"observedGeneration": p.Generation,
		"nodes":              int64(sum.Nodes),
		"verified":           int64(sum.Verified),
		"drifted":            int64(sum.Drifted),
		"failed":             int64(sum.Failed),
		"rollout":            string(sum.Rollout),
		"problems":           problems(rep),
	}
}

// writePolicyStatus recomputes policy name's status from the policy, the Nodes and the RoutingNodeStates and
// writes it when it changed. Every agent runs it after changing its own state: there is no controller of its own
// to deploy. Each write is guarded by the policy's resourceVersion, and every state written is an event that
// makes each agent compute the counts again, so the last write counts every state written before it.
//
// Under Run, the counts come from the watch caches, and a write that loses to another agent's is noted and
// written again, from the caches, after the next reconcile (the winner's write is an event that brings one), so
// a conflict costs no reads. Called alone, it reads the API server and retries. A policy that is gone has no
// status to write.
func (a *Agent) writePolicyStatus(ctx context.Context, name string) error {
	v := a.view()
	write := func() error {
		u, err := v.policy(ctx, name)
		if err != nil || u == nil {
			return err
		}
		p, err := policyFrom(u)
		if err != nil {
			return err
		}
		selected, states, err := fleetOf(ctx, v, p)
		if err != nil {
			return err
		}
		status := policyStatus(p, Summarize(p, selected, states))
		old, _, _ := unstructured.NestedMap(u.Object, "status")
		if sameStatus(old, status) {
			return nil
		}
		if old == nil {
			old = map[string]any{}
		}
		for k, v := range status {
			old[k] = v
		}
		u = u.DeepCopy() // the cache's object stays as the API server sent it
		u.Object["status"] = old
		_, err = a.Dynamic.Resource(PolicyResource).UpdateStatus(ctx, u, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return err
		}
		if apierrors.IsNotFound(err) {
			return nil // deleted since it was read: no status to write
		}
		if err != nil {
			return fmt.Errorf("policy %s status: %w", name, err)
		}
		return nil
	}
	if a.cache != nil {
		err := write()
		if apierrors.IsConflict(err) {
			if a.recount == nil {
				a.recount = map[string]bool{}
			}
			a.recount[name] = true
			return nil
		}
		delete(a.recount, name)
		return err
	}
	return retry.RetryOnConflict(retry.DefaultRetry, write)
}

// sameStatus compares the keys the agent writes, so conditions others add do not count as a change.
func sameStatus(old, status map[string]any) bool {
	for k, v := range status {
		if !reflect.DeepEqual(old[k], v) {
			return false
		}
	}
	return true
}

// writeRecounts writes again the policy statuses whose last write lost to another agent's.
func (a *Agent) writeRecounts(ctx context.Context) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(a.recount)) {
		errs = append(errs, a.writePolicyStatus(ctx, name))
	}
	return errors.Join(errs...)
}
