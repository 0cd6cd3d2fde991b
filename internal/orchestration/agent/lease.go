package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/symroute/symroute/internal/core/fleet"
)

// errLeaseLost is another node taking the slot between the agent's read and its write.
var errLeaseLost = errors.New("another node took the lease")

// leases reads p's rollout slots; a slot never taken is simply missing.
func (a *Agent) leases(ctx context.Context, p fleet.Policy, nodes int) ([]fleet.Lease, error) {
	var out []fleet.Lease
	for _, name := range fleet.LeaseNames(p.Name, p.Budget(nodes)) {
		l, err := a.view().lease(ctx, a.Namespace, name)
		if err != nil {
			return nil, err
		}
		if l != nil {
			out = append(out, leaseFrom(l))
		}
	}
	return out, nil
}

func leaseFrom(l *coordinationv1.Lease) fleet.Lease {
	out := fleet.Lease{Name: l.Name}
	if l.Spec.HolderIdentity != nil {
		out.Holder = *l.Spec.HolderIdentity
	}
	if l.Spec.RenewTime != nil {
		out.RenewedAt = l.Spec.RenewTime.Time
	}
	if l.Spec.LeaseDurationSeconds != nil {
		out.Expiration = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return out
}

// takeLease takes the slot fleet.Next chose, or renews it when the node holds it. The API server's optimistic
// concurrency decides between two nodes that chose the same free slot: the create, or the update carrying the
// resourceVersion the agent read, succeeds for one; the other gets errLeaseLost and waits.
func (a *Agent) takeLease(ctx context.Context, name string) (*coordinationv1.Lease, error) {
	leases := a.Kube.CoordinationV1().Leases(a.Namespace)
	l, err := leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: a.Namespace}}
		a.hold(l)
		l, err = leases.Create(ctx, l, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil, errLeaseLost
		}
		return l, leaseError(name, err)
	}
	if err != nil {
		return nil, leaseError(name, err)
	}
	// fleet.Next found it free or this node's; that was a moment ago, and the resourceVersion read now guards
	// the write. Whether it is still free is Next's to say, on the agent's next run.
	if held := leaseFrom(l); held.Holder != "" && held.Holder != a.Node && !a.now().After(held.RenewedAt.Add(held.Expiration)) {
		return nil, errLeaseLost
	}
	a.hold(l)
	l, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return nil, errLeaseLost
	}
	return l, leaseError(name, err)
}

// hold makes l this node's as of now.
func (a *Agent) hold(l *coordinationv1.Lease) {
	holder := a.Node
	seconds := int32(a.leaseDuration() / time.Second)
	now := metav1.NewMicroTime(a.now())
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != holder {
		l.Spec.AcquireTime = &now
	}
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = &holder, &seconds, &now
}

// renew renews l every third of its duration until ctx ends and returns the lease as last written. A renewal that
// fails is logged and tried again: the apply under way cannot be stopped half done, and the slot stays counted
// until it expires.
func (a *Agent) renew(ctx context.Context, l *coordinationv1.Lease) *coordinationv1.Lease {
	ticker := time.NewTicker(a.leaseDuration() / 3)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return l
		case <-ticker.C:
			next := l.DeepCopy()
			a.hold(next)
			updated, err := a.Kube.CoordinationV1().Leases(a.Namespace).Update(ctx, next, metav1.UpdateOptions{})
			if err != nil {
				a.logf("renew lease %s: %v", l.Name, err)
				continue
			}
			l = updated
		}
	}
}

// releaseLease frees the slot for the next node: the lease stays, without a holder. A lease written since the
// agent's last renewal it read was either renewed by the agent's own last renewal (cut short when the apply ended)
// or taken over by another node (the renewals failed for longer than its duration): it is read again, and only
// this node's hold is released.
func (a *Agent) releaseLease(ctx context.Context, l *coordinationv1.Lease) error {
	leases := a.Kube.CoordinationV1().Leases(a.Namespace)
	for attempt := 0; ; attempt++ {
		next := l.DeepCopy()
		next.Spec.HolderIdentity, next.Spec.AcquireTime = nil, nil
		_, err := leases.Update(ctx, next, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) || attempt == 2 {
			return leaseError(l.Name, err)
		}
		if l, err = leases.Get(ctx, l.Name, metav1.GetOptions{}); err != nil {
			return leaseError(next.Name, err)
		}
		if leaseFrom(l).Holder != a.Node {
			a.logf("lease %s was taken over while this node applied", l.Name)
			return nil
		}
	}
}

func leaseError(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("lease %s: %w", name, err)
}
