package agent

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"
)

func stateObject(node, rv, result string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{"result": result}}}
	u.SetName(node)
	u.SetResourceVersion(rv)
	return u
}

// TestCacheViewTakesTheAgentsOwnWriteUntilTheCacheHasIt: the agent's own state comes from its last write while
// the cache shows an older version (the write's event not yet delivered), in state() and in states() alike, and
// from the cache again once it shows the write. Other nodes' states are the cache's throughout.
func TestCacheViewTakesTheAgentsOwnWriteUntilTheCacheHasIt(t *testing.T) {
	ctx := context.Background()
	store := cache.NewStore(cache.MetaNamespaceKeyFunc)
	store.Add(stateObject("n1", "5", "Verified"))
	store.Add(stateObject("n2", "7", "Verified"))
	v := &cacheView{stateStore: store}

	v.wrote(stateObject("n1", "9", "RolledBack"))
	result := func(u *unstructured.Unstructured) string { return string(nodeStatusFrom(u).Result) }
	if u, _ := v.state(ctx, "n1"); u == nil || result(u) != "RolledBack" {
		t.Errorf("n1 while the cache is behind: %v", u)
	}
	list, _ := v.states(ctx)
	got := map[string]string{}
	for _, u := range list {
		got[u.GetName()] = result(u)
	}
	if len(list) != 2 || got["n1"] != "RolledBack" || got["n2"] != "Verified" {
		t.Errorf("the states while the cache is behind: %v", got)
	}
	if u, _ := v.state(ctx, "n2"); result(u) != "Verified" {
		t.Errorf("another node's state: %v", u)
	}

	// The cache catches up, then moves on (the admin edits the state): the cache's version counts from then on.
	store.Update(stateObject("n1", "9", "RolledBack"))
	if u, _ := v.state(ctx, "n1"); u.GetResourceVersion() != "9" || v.written != nil {
		t.Errorf("once the cache shows the write: %v, written %v", u, v.written)
	}
	store.Update(stateObject("n1", "10", "Invalid"))
	if u, _ := v.state(ctx, "n1"); result(u) != "Invalid" {
		t.Errorf("after the cache moved on: %v", u)
	}

	// A first write, before the cache has the object at all.
	v.wrote(stateObject("n3", "11", "Verified"))
	if list, _ := v.states(ctx); len(list) != 3 {
		t.Errorf("the first write of n3 is not among the states: %d", len(list))
	}
}

// TestCacheViewStopsStandingInForTheCacheAfterAWhile: a cache that shows another version for longer than a watch
// lags shows someone else's write (an admin's edit, a delete), and is believed then.
func TestCacheViewStopsStandingInForTheCacheAfterAWhile(t *testing.T) {
	ctx := context.Background()
	store := cache.NewStore(cache.MetaNamespaceKeyFunc)
	v := &cacheView{stateStore: store}
	v.wrote(stateObject("n1", "9", "Verified"))
	v.writtenAt = v.writtenAt.Add(-writtenFor - time.Second)
	if list, _ := v.states(ctx); len(list) != 0 {
		t.Errorf("the states: %v", list)
	}
	v.wrote(stateObject("n1", "9", "Verified"))
	v.writtenAt = v.writtenAt.Add(-writtenFor - time.Second)
	if u, _ := v.state(ctx, "n1"); u != nil {
		t.Errorf("a state deleted since the agent's write long ago: %v", u)
	}
}
