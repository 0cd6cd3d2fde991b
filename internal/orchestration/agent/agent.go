// Package agent is the node agent's Kubernetes side: one reconcile step for one node reads the RoutingPolicies and
// the node's labels, picks the node's policy, validates its description against the node's own addresses, waits
// for a rollout slot (a Lease), has the Host apply or remove symroute's configuration, and writes what happened to
// the node's RoutingNodeState and the counts to the policy's status. What the Host does on the machine (the apply
// engine's try, the probes, remove) is behind the Host interface.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/util/retry"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/fleet"
)

// The custom resources, as packaging/kubernetes/crd-*.yaml define them.
var (
	PolicyResource    = schema.GroupVersionResource{Group: "symroute.io", Version: "v1alpha1", Resource: "routingpolicies"}
	NodeStateResource = schema.GroupVersionResource{Group: "symroute.io", Version: "v1alpha1", Resource: "routingnodestates"}
)

// Outcome is what an apply came to on the machine: Verified (the engine confirmed it: verify and the probes
// passed) or rolled back (the previous state is back), with verify's findings and a message saying why.
type Outcome struct {
	Verified bool
	Message  string
	Findings []drift.Finding
}

// Host is the machine the agent runs on.
type Host interface {
	// Addresses are the live addresses of the node's links, by link name, as discover reads them: the addresses an
	// interface of the policy that lists none takes on this node. An error is a read that failed.
	Addresses() (map[string][]netip.Prefix, error)
	// Apply applies a description (the policy's text) as symroute try does and confirms it only when its checks,
	// as the policy sets them, pass. An error means the apply could not say how it ended.
	Apply(ctx context.Context, description []byte, checks fleet.Checks) (Outcome, error)
	// Remove removes symroute's configuration, as symroute remove does.
	Remove(ctx context.Context) error
	// Verify compares the node's routing with a description, as symroute verify does, changing nothing. An error
	// means the live state could not be read, or, matching ErrDoesNotHold, the description no longer holds on the
	// node.
	Verify(ctx context.Context, description []byte) (drift.Result, error)
}

// ErrDoesNotHold is a description that does not hold on the node as it is now (a link without the address the
// policy leaves to it, say): there is nothing to compare the live state with.
var ErrDoesNotHold = errors.New("the description does not hold on this node")

// notHolding is an ErrDoesNotHold that says why.
type notHolding string

func (e notHolding) Error() string        { return string(e) }
func (e notHolding) Is(target error) bool { return target == ErrDoesNotHold }

// Clients are the API clients the agent uses: typed for Nodes and Leases, dynamic for symroute's resources,
// metadata for watching the Nodes' labels.
type Clients struct {
	Kube     kubernetes.Interface
	Dynamic  dynamic.Interface
	Metadata metadata.Interface
}

// DefaultLeaseDuration is how long a rollout slot stays taken after its holder's last renewal: the agent renews it
// while it applies, so it is only how long a node that died mid-change blocks the rollout.
const DefaultLeaseDuration = 60 * time.Second

// Agent reconciles one node.
type Agent struct {
	Clients
	Node string
	// Namespace holds the rollout's Leases (the agent's own namespace).
	Namespace     string
	Host          Host
	LeaseDuration time.Duration
	// Now and Logf default to time.Now and nothing.
	Now  func() time.Time
	Logf func(format string, args ...any)

	// VerifyEvery is how often the agent verifies its node with no change seen; Changes, when not nil, signals a
	// change of the node's rules, routes, addresses or links, after which it verifies too.
	VerifyEvery time.Duration
	Changes     <-chan struct{}

	cache *cacheView // Run's watch caches; nil: Reconcile reads the API server
	// conditionSynced is the Node condition the agent last put in place or found there (conditionKey).
	conditionSynced string
	// recount are the policies whose status write lost to another's under Run, written again after each
	// reconcile until one holds: the write that won may have counted without this node's change.
	recount map[string]bool

	mu       sync.Mutex // guards what the metrics read
	verified lastVerify
	state    nodeStatus
}

func (a *Agent) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Agent) logf(format string, args ...any) {
	if a.Logf != nil {
		a.Logf(format, args...)
	}
}

func (a *Agent) leaseDuration() time.Duration {
	if a.LeaseDuration > 0 {
		return a.LeaseDuration
	}
	return DefaultLeaseDuration
}

// Reconcile brings the node in line with the policies once. It returns an error only when it could not find out
// or record what happened; a policy that does not hold on this node, or an apply rolled back, is recorded in the
// node's state and is not an error of the agent's.
func (a *Agent) Reconcile(ctx context.Context) error {
	v := a.view()
	labels, err := v.nodeLabels(ctx, a.Node)
	if err != nil {
		return err
	}
	list, err := v.policies(ctx)
	if err != nil {
		return err
	}
	var policies []fleet.Policy
	for _, u := range list {
		p, err := policyFrom(u)
		if err != nil {
			return err
		}
		policies = append(policies, p)
	}
	old, err := a.ownState(ctx)
	if err != nil {
		return err
	}
	a.noteState(old)

	p, conflict, ok := fleet.ForNode(policies, labels)
	switch {
	case conflict != nil:
		// Nothing changes on the machine: which description the node should follow is the operator's to say.
		return a.record(ctx, old, nodeStatus{Policy: old.Policy, AppliedGeneration: old.AppliedGeneration, Result: fleet.Invalid,
			Message: fmt.Sprintf("policies %s all select this node; narrow their nodeSelectors so one does", strings.Join(conflict, " and "))})
	case !ok:
		if old.Result == "" || old.Result == fleet.Removed {
			return nil // never applied here, or removed already
		}
		if err := a.Host.Remove(ctx); err != nil {
			return fmt.Errorf("remove: %w", err)
		}
		a.logf("no policy selects node %s: removed symroute's configuration", a.Node)
		return a.record(ctx, old, nodeStatus{Result: fleet.Removed, Message: "no RoutingPolicy selects this node; symroute's configuration is removed"})
	}

	// What is on the machine stays as it is while the description does not hold: the generation applied so far.
	applied := int64(0)
	if old.Policy == p.Name {
		applied = old.AppliedGeneration
	}
	host, rep := description.ParseWith([]byte(p.Description), description.Options{FromNode: true})
	if rep.HasErrors(false) {
		return a.record(ctx, old, nodeStatus{Policy: p.Name, AppliedGeneration: applied, Result: fleet.Invalid,
			Message: fmt.Sprintf("generation %d of the description does not hold on any node (its problems are in the policy's status):\n%s", p.Generation, errorLines(rep))})
	}
	if unknown := unknownInterfaces(host, p.Checks.SkipGateways); len(unknown) > 0 {
		return a.record(ctx, old, nodeStatus{Policy: p.Name, AppliedGeneration: applied, Result: fleet.Invalid,
			Message: fmt.Sprintf("generation %d: spec.checks.skipGateways names %s, which the description does not have", p.Generation, strings.Join(unknown, ", "))})
	}

	selected, states, err := fleetOf(ctx, a.view(), p)
	if err != nil {
		return err
	}
	leases, err := a.leases(ctx, p, len(selected))
	if err != nil {
		return err
	}
	// A node whose state says Invalid (two policies selected it, or its links lacked an address) goes through the
	// rollout again once the description holds: Next would take the generation it applied before as done, and its
	// state would say Invalid for good. Applying the same generation again verifies it and says so.
	for i := range states {
		if states[i].Node == a.Node && states[i].Result == fleet.Invalid {
			states[i].AppliedGeneration = 0
		}
	}
	d := fleet.Next(p, a.Node, len(selected), states, leases, a.now())
	if !d.Apply {
		a.logf("policy %s: %s", p.Name, d.Why)
		// A node whose state changed writes the counts itself (record). Other changes of the counts (a node
		// relabelled, one gone) are written by one agent, the first selected node's: every event reaches every
		// agent, and each writing would make N writes and N-1 conflicts of each change. A generation with no
		// status yet gets one from whoever sees it first, so that a new policy shows its nodes at once.
		if len(selected) > 0 && selected[0] == a.Node || !a.statusObserved(ctx, p) {
			return a.writePolicyStatus(ctx, p.Name)
		}
		return nil
	}
	// The node's own addresses are read only now that it is its turn: every event reaches every agent, and a node
	// whose generation is in place, or not yet its to take, has no use for them (its verify watches them).
	addrs, err := a.Host.Addresses()
	if err != nil {
		return err // a read that failed is retried, not recorded as a description that does not hold
	}
	if _, rep := description.ParseWith([]byte(p.Description), description.Options{FromNode: true, Node: addrs}); rep.HasErrors(false) {
		return a.record(ctx, old, nodeStatus{Policy: p.Name, AppliedGeneration: applied, Result: fleet.Invalid,
			Message: fmt.Sprintf("generation %d of the description does not hold on this node:\n%s", p.Generation, errorLines(rep))})
	}
	lease, err := a.takeLease(ctx, d.Lease)
	if errors.Is(err, errLeaseLost) {
		a.logf("policy %s: another node took rollout slot %s first", p.Name, d.Lease)
		return nil
	}
	if err != nil {
		return err
	}

	renewing, stopRenewing := context.WithCancel(ctx)
	renewed := make(chan *coordinationv1.Lease, 1)
	go func() { renewed <- a.renew(renewing, lease) }()
	outcome, applyErr := a.Host.Apply(ctx, []byte(p.Description), p.Checks)
	stopRenewing()
	lease = <-renewed

	if applyErr != nil {
		// How the apply ended is unknown: the slot stays taken until it expires, so the rollout does not move on
		// past a node in an unknown state, and the node's state stops the rollout.
		if err := a.record(ctx, old, nodeStatus{Policy: p.Name, AppliedGeneration: p.Generation, Result: fleet.RolledBack,
			Message: fmt.Sprintf("the apply of generation %d failed: %v", p.Generation, applyErr)}); err != nil {
			return errors.Join(applyErr, err)
		}
		return fmt.Errorf("apply: %w", applyErr)
	}
	s := nodeStatus{Policy: p.Name, AppliedGeneration: p.Generation, Result: fleet.Verified, Message: outcome.Message, Findings: outcome.Findings}
	if !outcome.Verified {
		s.Result = fleet.RolledBack
	}
	err = a.record(ctx, old, s)
	if errors.Is(err, errStateNotWritten) {
		return err // the slot stays taken: the rollout does not move on past a node whose end nobody knows
	}
	// The state says how the node ended (a rollback stops the rollout there), so the slot is free again, whatever
	// became of the reports that only show the state.
	return errors.Join(err, a.releaseLease(ctx, lease))
}

// record writes the node's state, its condition and Event, and the counts of the policies it concerns: the one it
// follows now and, when it changed, the one it followed.
func (a *Agent) record(ctx context.Context, old, s nodeStatus) error {
	s = s.next(old, a.now())
	var errs []error
	// A state that says what it said already (a conflict still there, say) is not written again, and has no Event;
	// its condition is still brought in line (a report that failed before).
	if reflect.DeepEqual(s.object(), old.object()) {
		errs = append(errs, a.syncCondition(ctx, s))
	} else {
		if err := a.writeOwnState(ctx, s); err != nil {
			return err
		}
		a.noteState(s)
		errs = append(errs, a.report(ctx, old, s))
	}
	for _, name := range []string{s.Policy, old.Policy} {
		if name != "" {
			errs = append(errs, a.writePolicyStatus(ctx, name))
		}
		if old.Policy == s.Policy {
			break
		}
	}
	return errors.Join(errs...)
}

// ownState is the node's RoutingNodeState's status; zero when there is none yet.
func (a *Agent) ownState(ctx context.Context) (nodeStatus, error) {
	u, err := a.view().state(ctx, a.Node)
	if err != nil || u == nil {
		return nodeStatus{}, err
	}
	return nodeStatusFrom(u), nil
}

// errStateNotWritten is a node state the API server did not take.
var errStateNotWritten = errors.New("the node's state is not written")

func (a *Agent) writeOwnState(ctx context.Context, s nodeStatus) error {
	states := a.Dynamic.Resource(NodeStateResource)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		u, err := states.Get(ctx, a.Node, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			u = &unstructured.Unstructured{}
			u.SetAPIVersion(NodeStateResource.GroupVersion().String())
			u.SetKind("RoutingNodeState")
			u.SetName(a.Node)
			u, err = states.Create(ctx, u, metav1.CreateOptions{})
		}
		if err != nil {
			return fmt.Errorf("%w: routing node state %s: %w", errStateNotWritten, a.Node, err)
		}
		// Unchanged, it is not written: every write is an event each agent's Run reconciles on.
		if reflect.DeepEqual(u.Object["status"], s.object()) {
			return nil
		}
		u.Object["status"] = s.object()
		written, err := states.UpdateStatus(ctx, u, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("%w: routing node state %s status: %w", errStateNotWritten, a.Node, err)
		}
		if a.cache != nil {
			a.cache.wrote(written)
		}
		return nil
	})
}

// fleetOf reads what p's rollout and counts are computed from: the names of the nodes p selects and every node's
// RoutingNodeState (a node p no longer selects may still hold one of its generations).
func fleetOf(ctx context.Context, v view, p fleet.Policy) (selected []string, states []fleet.NodeState, err error) {
	nodes, err := v.nodes(ctx)
	if err != nil {
		return nil, nil, err
	}
	for name, labels := range nodes {
		if p.Selector.Matches(labels) {
			selected = append(selected, name)
		}
	}
	sort.Strings(selected)
	list, err := v.states(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range list {
		s := nodeStatusFrom(u)
		states = append(states, fleet.NodeState{Node: u.GetName(), Policy: s.Policy, AppliedGeneration: s.AppliedGeneration, Result: s.Result})
	}
	return selected, states, nil
}

// unknownInterfaces are the names that are not interfaces of host.
func unknownInterfaces(host *description.Host, names []string) []string {
	var out []string
	for _, name := range names {
		if !slices.ContainsFunc(host.Interfaces, func(i description.Interface) bool { return i.Name == name }) {
			out = append(out, name)
		}
	}
	return out
}

// statusObserved says whether p's status is of p's generation already, as the agent's view has the policy.
func (a *Agent) statusObserved(ctx context.Context, p fleet.Policy) bool {
	u, err := a.view().policy(ctx, p.Name)
	if err != nil || u == nil {
		return false
	}
	gen, found, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	return found && gen == p.Generation
}
