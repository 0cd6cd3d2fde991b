package agent

import (
	"context"
	"errors"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

var (
	nodeResource  = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	leaseResource = schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}
)

// Retry bounds: a Reconcile that fails (the API server unreachable, say) runs again after a delay that doubles
// from the first to the last, so an agent never retries in a tight loop.
const (
	firstRetry = time.Second
	lastRetry  = 5 * time.Minute
)

// Run reconciles the node whenever something it decides from changes, until ctx ends: the RoutingPolicies, the
// node's own Node (its labels), every RoutingNodeState (another node's rollback stops the rollout) and the
// rollout's Leases in the agent's namespace (a slot freed lets this node start). It watches them and does not
// poll; resync replays every object to the handlers once a period, so a change whose event was missed is acted
// on then. Changes that arrive while a Reconcile runs (an Apply takes seconds) come to one more Reconcile.
func (a *Agent) Run(ctx context.Context, resync time.Duration) error {
	poke := make(chan struct{}, 1)
	trigger := func() {
		select {
		case poke <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { trigger() },
		UpdateFunc: func(any, any) { trigger() },
		DeleteFunc: func(any) { trigger() },
	}
	ownNode := func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", a.Node).String()
	}
	watches := []struct {
		resource  schema.GroupVersionResource
		namespace string
		tweak     dynamicinformer.TweakListOptionsFunc
	}{
		{PolicyResource, "", nil},
		{NodeStateResource, "", nil},
		{nodeResource, "", ownNode},
		{leaseResource, a.Namespace, nil},
	}
	var synced []cache.InformerSynced
	for _, w := range watches {
		informer := dynamicinformer.NewFilteredDynamicInformer(a.Dynamic, w.resource, w.namespace, resync, cache.Indexers{}, w.tweak).Informer()
		if _, err := informer.AddEventHandler(handler); err != nil {
			return err
		}
		go informer.RunWithContext(ctx)
		synced = append(synced, informer.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return ctx.Err()
	}
	trigger()

	retry := firstRetry
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poke:
		}
		err := a.Reconcile(ctx)
		if err == nil || errors.Is(err, context.Canceled) {
			retry = firstRetry
			continue
		}
		a.logf("reconcile: %v; again in %v", err, retry)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
		retry = min(2*retry, lastRetry)
		trigger()
	}
}
