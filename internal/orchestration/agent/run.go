package agent

import (
	"context"
	"errors"
	"maps"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/metadata/metadatainformer"
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

// DefaultVerifyEvery is how often the agent verifies its node when nothing changed: the netlink events cover a
// rule or route deleted; the period covers what they do not show (a sysctl, a networkd file).
const DefaultVerifyEvery = 10 * time.Minute

// changeSettle is how long the node's routing must be quiet after a change before the agent verifies: networkd
// configuring a link sends dozens of events within a second, and one verify after them says what they came to.
const changeSettle = 2 * time.Second

// maxChangeDelay bounds how long changes that never settle put a verify off.
const maxChangeDelay = 10 * time.Second

// Run reconciles the node whenever something it decides from changes, until ctx ends: the RoutingPolicies, the
// Nodes' labels (its own, and the others' for the policy's counts), every RoutingNodeState (another node's rollback stops the rollout) and the
// rollout's Leases in the agent's namespace (a slot freed lets this node start). It watches them and does not
// poll; resync replays every object to the handlers once a period, so a change whose event was missed is acted
// on then. Changes that arrive while a Reconcile runs (an Apply takes seconds) come to one more Reconcile. It also
// verifies the node: after its rules, routes, addresses or links change (Changes), and every VerifyEvery.
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
	// A Node's object changes with its status (the kubelet's reports); what the agent decides from is its name and
	// labels, so only those wake it.
	nodeHandler := handler
	nodeHandler.UpdateFunc = func(before, after any) {
		b, okB := before.(*metav1.PartialObjectMetadata)
		n, okN := after.(*metav1.PartialObjectMetadata)
		if !okB || !okN || !maps.Equal(b.Labels, n.Labels) {
			trigger()
		}
	}
	if a.Metadata == nil {
		return errors.New("Run needs a metadata client (Clients.Metadata) to watch the Nodes")
	}
	informers := []struct {
		informer cache.SharedIndexInformer
		handler  cache.ResourceEventHandler
	}{
		{metadatainformer.NewFilteredMetadataInformer(a.Metadata, nodeResource, "", resync, cache.Indexers{}, nil).Informer(), nodeHandler},
		{dynamicinformer.NewFilteredDynamicInformer(a.Dynamic, PolicyResource, "", resync, cache.Indexers{}, nil).Informer(), handler},
		{dynamicinformer.NewFilteredDynamicInformer(a.Dynamic, NodeStateResource, "", resync, cache.Indexers{}, nil).Informer(), handler},
		{dynamicinformer.NewFilteredDynamicInformer(a.Dynamic, leaseResource, a.Namespace, resync, cache.Indexers{}, nil).Informer(), handler},
	}
	var synced []cache.InformerSynced
	for _, w := range informers {
		if _, err := w.informer.AddEventHandler(w.handler); err != nil {
			return err
		}
		go w.informer.RunWithContext(ctx)
		synced = append(synced, w.informer.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return ctx.Err()
	}
	a.cache = &cacheView{nodeStore: informers[0].informer.GetStore(), policyStore: informers[1].informer.GetStore(),
		stateStore: informers[2].informer.GetStore(), leaseStore: informers[3].informer.GetStore()}
	defer func() { a.cache = nil }()
	trigger()

	// The first verify runs at once (the metrics have something to say from the start); then one runs when the
	// node's routing has been quiet for changeSettle after a change, and once every VerifyEvery.
	verifyEvery := a.VerifyEvery
	if verifyEvery <= 0 {
		verifyEvery = DefaultVerifyEvery
	}
	verifyAt := time.NewTimer(0)
	changes := a.Changes
	var changedSince time.Time // the first change since the last verify
	defer verifyAt.Stop()

	retry := firstRetry
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-changes:
			if !ok {
				a.logf("the watch of the node's routing ended; verifying every %v only", verifyEvery)
				changes = nil
				continue
			}
			if changedSince.IsZero() {
				changedSince = time.Now()
			}
			verifyAt.Reset(verifyDelay(time.Now(), changedSince))
			continue
		case <-verifyAt.C:
			if changedSince.IsZero() {
				// The periodic verify reads the Node's condition again: someone else may have changed it.
				a.conditionSynced = ""
			}
			changedSince = time.Time{}
			if err := a.Verify(ctx); err != nil && ctx.Err() == nil {
				a.logf("verify: %v", err)
			}
			verifyAt.Reset(verifyEvery)
			continue
		case <-poke:
		}
		err := errors.Join(a.Reconcile(ctx), a.writeRecounts(ctx))
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

// verifyDelay is how long after a change at now the agent verifies, the first change not yet verified having come
// at since: once the changes have been quiet for changeSettle, but no later than maxChangeDelay after since (on a
// node where pods come and go, the changes never stop for long).
func verifyDelay(now, since time.Time) time.Duration {
	return max(0, min(changeSettle, since.Add(maxChangeDelay).Sub(now)))
}
