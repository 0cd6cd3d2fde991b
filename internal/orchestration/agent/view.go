package agent

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
)

// view is what the agent decides from: the Nodes' names and labels, the policies, the node states and the
// rollout's Leases. Reconcile called alone reads them from the API server (apiView); under Run it reads Run's
// watch caches (cacheView), so an event, which reaches every agent, costs the API server no reads. Writes always
// go to the API server, guarded by resourceVersion: a cache a little behind makes a write conflict and retry, not
// a wrong write, and the event that brings the cache up to date starts another reconcile. The one thing the
// agent decides from that it writes itself, its own state, it takes from its write until the cache has caught up.
type view interface {
	// nodeLabels are the labels of the Node name; an error when it is not there.
	nodeLabels(ctx context.Context, name string) (map[string]string, error)
	// nodes are every Node's labels, by name.
	nodes(ctx context.Context) (map[string]map[string]string, error)
	policies(ctx context.Context) ([]*unstructured.Unstructured, error)
	// policy is nil when there is no such policy.
	policy(ctx context.Context, name string) (*unstructured.Unstructured, error)
	states(ctx context.Context) ([]*unstructured.Unstructured, error)
	// state is nil when the node has none yet.
	state(ctx context.Context, node string) (*unstructured.Unstructured, error)
	// lease is nil when the slot was never taken.
	lease(ctx context.Context, namespace, name string) (*coordinationv1.Lease, error)
}

func (a *Agent) view() view {
	if a.cache != nil {
		return a.cache
	}
	return apiView{&a.Clients}
}

// apiView reads from the API server at each call.
type apiView struct{ c *Clients }

func (v apiView) nodeLabels(ctx context.Context, name string) (map[string]string, error) {
	n, err := v.c.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	return n.Labels, nil
}

// nodes lists the Nodes as metadata when a metadata client is there: a Node's status is most of its size.
func (v apiView) nodes(ctx context.Context) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	if v.c.Metadata != nil {
		list, err := v.c.Metadata.Resource(nodeResource).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("nodes: %w", err)
		}
		for _, n := range list.Items {
			out[n.Name] = n.Labels
		}
		return out, nil
	}
	list, err := v.c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("nodes: %w", err)
	}
	for _, n := range list.Items {
		out[n.Name] = n.Labels
	}
	return out, nil
}

func (v apiView) list(ctx context.Context, gvr schema.GroupVersionResource, what string) ([]*unstructured.Unstructured, error) {
	list, err := v.c.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := make([]*unstructured.Unstructured, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

func (v apiView) policies(ctx context.Context) ([]*unstructured.Unstructured, error) {
	return v.list(ctx, PolicyResource, "routing policies")
}

func (v apiView) states(ctx context.Context) ([]*unstructured.Unstructured, error) {
	return v.list(ctx, NodeStateResource, "routing node states")
}

func (v apiView) get(ctx context.Context, gvr schema.GroupVersionResource, what, name string) (*unstructured.Unstructured, error) {
	u, err := v.c.Dynamic.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, name, err)
	}
	return u, nil
}

func (v apiView) policy(ctx context.Context, name string) (*unstructured.Unstructured, error) {
	return v.get(ctx, PolicyResource, "routing policy", name)
}

func (v apiView) state(ctx context.Context, node string) (*unstructured.Unstructured, error) {
	return v.get(ctx, NodeStateResource, "routing node state", node)
}

func (v apiView) lease(ctx context.Context, namespace, name string) (*coordinationv1.Lease, error) {
	l, err := v.c.Kube.CoordinationV1().Leases(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lease %s/%s: %w", namespace, name, err)
	}
	return l, nil
}

// cacheView reads Run's watch caches: Nodes as metadata only (an agent needs their labels, and a Node's status
// is most of its size), policies, node states and the agent's namespace's Leases. Objects are the caches' own:
// callers copy before changing one.
type cacheView struct {
	nodeStore, policyStore, stateStore, leaseStore cache.Store
	// written is the agent's own RoutingNodeState as it last wrote it, until the cache shows that write or
	// writtenFor has passed. The agent is its state's only writer but for an admin's hand, so a cache showing
	// another resourceVersion is, for that while, behind: deciding from it would apply again a generation just
	// applied, or just rolled back.
	written   *unstructured.Unstructured
	writtenAt time.Time
}

// writtenFor bounds how long the agent's write stands in for its cache's copy: a watch is behind by well under
// a second; a cache still showing another version after this shows someone else's write (kubectl edit, delete).
const writtenFor = 30 * time.Second

// wrote notes the agent's own state as the API server returned it from the agent's write.
func (v *cacheView) wrote(u *unstructured.Unstructured) { v.written, v.writtenAt = u, time.Now() }

// own is the agent's state as the cache has it (cached), or as the agent wrote it while the cache is behind.
func (v *cacheView) own(cached *unstructured.Unstructured) *unstructured.Unstructured {
	if v.written == nil {
		return cached
	}
	if cached != nil && cached.GetResourceVersion() == v.written.GetResourceVersion() || time.Since(v.writtenAt) > writtenFor {
		v.written = nil
		return cached
	}
	return v.written
}

func (v *cacheView) nodeLabels(_ context.Context, name string) (map[string]string, error) {
	o, ok, err := v.nodeStore.GetByKey(name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, apierrors.NewNotFound(nodeResource.GroupResource(), name)
	}
	return o.(*metav1.PartialObjectMetadata).Labels, nil
}

func (v *cacheView) nodes(context.Context) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, o := range v.nodeStore.List() {
		m := o.(*metav1.PartialObjectMetadata)
		out[m.Name] = m.Labels
	}
	return out, nil
}

func unstructuredList(s cache.Store) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range s.List() {
		out = append(out, o.(*unstructured.Unstructured))
	}
	return out
}

func unstructuredGet(s cache.Store, key string) (*unstructured.Unstructured, error) {
	o, ok, err := s.GetByKey(key)
	if err != nil || !ok {
		return nil, err
	}
	return o.(*unstructured.Unstructured), nil
}

func (v *cacheView) policies(context.Context) ([]*unstructured.Unstructured, error) {
	return unstructuredList(v.policyStore), nil
}

func (v *cacheView) states(context.Context) ([]*unstructured.Unstructured, error) {
	list := unstructuredList(v.stateStore)
	if v.written == nil {
		return list, nil
	}
	for i, u := range list {
		if u.GetName() == v.written.GetName() {
			list[i] = v.own(u)
			return list, nil
		}
	}
	if own := v.own(nil); own != nil {
		list = append(list, own)
	}
	return list, nil
}

func (v *cacheView) policy(_ context.Context, name string) (*unstructured.Unstructured, error) {
	return unstructuredGet(v.policyStore, name)
}

func (v *cacheView) state(_ context.Context, node string) (*unstructured.Unstructured, error) {
	u, err := unstructuredGet(v.stateStore, node)
	if err != nil || v.written == nil || node != v.written.GetName() {
		return u, err
	}
	return v.own(u), nil
}

func (v *cacheView) lease(_ context.Context, namespace, name string) (*coordinationv1.Lease, error) {
	u, err := unstructuredGet(v.leaseStore, namespace+"/"+name)
	if err != nil || u == nil {
		return nil, err
	}
	var l coordinationv1.Lease
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &l); err != nil {
		return nil, fmt.Errorf("lease %s/%s: %w", namespace, name, err)
	}
	return &l, nil
}
