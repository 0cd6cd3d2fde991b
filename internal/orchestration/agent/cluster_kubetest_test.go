//go:build kubetest

package agent_test

import (
	"context"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/fleet"
	"github.com/symroute/symroute/internal/orchestration/agent"
	"github.com/symroute/symroute/internal/tools/kubetest"
)

// namespace is the agent's, as packaging/kubernetes/rbac.yaml names it.
const namespace = "symroute"

// cluster is a real API server with symroute's CRDs and RBAC applied: admin sets the scene and reads the result;
// the agents act as the DaemonSet's service account, so a verb rbac.yaml lacks fails the test.
type cluster struct {
	admin  agent.Clients
	agent  agent.Clients
	server *kubetest.Server
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	// Each test has its own control plane on its own ports and temp dir, so they run side by side.
	t.Parallel()
	started := time.Now()
	server := kubetest.Start(t)
	defer func() {
		t.Logf("cluster ready in %v (API server %v)", time.Since(started).Round(time.Millisecond), server.ReadyAfter.Round(time.Millisecond))
	}()
	adminConfig, err := clientcmd.BuildConfigFromFlags("", server.KubeconfigFile)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{admin: clients(t, adminConfig), server: server}
	ctx := t.Context()
	if _, err := c.admin.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	crds, err := filepath.Glob("../../../packaging/kubernetes/crd-*.yaml")
	if err != nil || len(crds) != 2 {
		t.Fatalf("CRDs %v: %v", crds, err)
	}
	server.CreateManifests(t, append(crds, "../../../packaging/kubernetes/rbac.yaml", "../../../packaging/kubernetes/admission.yaml")...)
	t.Logf("CRDs established after %v", time.Since(started).Round(time.Millisecond))
	c.agent = clients(t, server.TokenConfig(server.ServiceAccountToken(t, namespace, "symroute-agent")))
	// The RBAC authorizer learns of the new bindings from its own watch: wait until the account may read.
	eventually(t, "the service account's bindings to take effect", func() bool {
		_, err := c.agent.Dynamic.Resource(agent.PolicyResource).List(ctx, metav1.ListOptions{})
		return err == nil
	})
	return c
}

func clients(t *testing.T, config *rest.Config) agent.Clients {
	t.Helper()
	// kubetest lifts client-go's default of 5 requests a second, which would make the test's dozens of reconciles
	// wait on the client; the metadata client, for Run's watch of the Nodes, is the agent's own need.
	kube, dyn := kubetest.Clients(t, config)
	config = rest.CopyConfig(config)
	config.QPS, config.Burst = 1000, 1000
	meta, err := metadata.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	return agent.Clients{Kube: kube, Dynamic: dyn, Metadata: meta}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// node creates a Node object with labels (no kubelet: the agent reads only its name and labels).
func (c *cluster) node(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	if _, err := c.admin.Kube.CoreV1().Nodes().Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) relabel(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	n, err := c.admin.Kube.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels = labels
	if _, err := c.admin.Kube.CoreV1().Nodes().Update(t.Context(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// policy creates or updates a RoutingPolicy's spec.
func (c *cluster) policy(t *testing.T, name string, spec map[string]any) {
	t.Helper()
	policies := c.admin.Dynamic.Resource(agent.PolicyResource)
	u, err := policies.Get(t.Context(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		u = &unstructured.Unstructured{Object: map[string]any{"apiVersion": "symroute.io/v1alpha1", "kind": "RoutingPolicy", "metadata": map[string]any{"name": name}}}
		u.Object["spec"] = spec
		_, err = policies.Create(t.Context(), u, metav1.CreateOptions{})
	} else if err == nil {
		u.Object["spec"] = spec
		_, err = policies.Update(t.Context(), u, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatalf("policy %s: %v", name, err)
	}
}

func (c *cluster) deletePolicy(t *testing.T, name string) {
	t.Helper()
	if err := c.admin.Dynamic.Resource(agent.PolicyResource).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// status reads an object's status; nil when the object does not exist.
func (c *cluster) status(t *testing.T, gvr schema.GroupVersionResource, name string) map[string]any {
	t.Helper()
	u, err := c.admin.Dynamic.Resource(gvr).Get(t.Context(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	s, _, _ := unstructured.NestedMap(u.Object, "status")
	if s == nil {
		s = map[string]any{}
	}
	return s
}

// resourceVersions are those of the policies and node states, one string: it changes with any write to them.
func (c *cluster) resourceVersions(t *testing.T) string {
	t.Helper()
	var out []string
	for _, gvr := range []schema.GroupVersionResource{agent.PolicyResource, agent.NodeStateResource} {
		list, err := c.admin.Dynamic.Resource(gvr).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range list.Items {
			out = append(out, u.GetName()+"@"+u.GetResourceVersion())
		}
	}
	return strings.Join(out, " ")
}

func (c *cluster) nodeState(t *testing.T, node string) map[string]any {
	return c.status(t, agent.NodeStateResource, node)
}

func (c *cluster) policyStatus(t *testing.T, name string) map[string]any {
	return c.status(t, agent.PolicyResource, name)
}

// newAgent is one node's agent, acting as the service account with a token bound to its Node (as the kubelet
// binds a pod's token, with the node's name in it), with its own fake machine. The Node must exist.
func (c *cluster) newAgent(t *testing.T, node string, host *fakeHost) *agent.Agent {
	return &agent.Agent{Clients: c.nodeClients(t, node), Node: node, Namespace: namespace, Host: host,
		Logf: func(format string, args ...any) { t.Logf(node+": "+format, args...) }}
}

// nodeClients act as the service account, with a token bound to node's Node object.
func (c *cluster) nodeClients(t *testing.T, node string) agent.Clients {
	t.Helper()
	return clients(t, c.nodeConfig(t, node))
}

// nodeConfig is the client configuration nodeClients uses.
func (c *cluster) nodeConfig(t *testing.T, node string) *rest.Config {
	t.Helper()
	return c.server.TokenConfig(c.server.NodeToken(t, namespace, "symroute-agent", node))
}

// reads counts the GET requests (gets, lists) a client sends, watches apart.
type reads struct{ n atomic.Int64 }

func (r *reads) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if req.Method == http.MethodGet && req.URL.Query().Get("watch") != "true" {
			r.n.Add(1)
		}
		return rt.RoundTrip(req)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func reconcile(t *testing.T, agents ...*agent.Agent) {
	t.Helper()
	for _, a := range agents {
		if err := a.Reconcile(t.Context()); err != nil {
			t.Fatalf("%s: %v", a.Node, err)
		}
	}
}

// fakeHost is one node's machine: its links' addresses, and a record of what the agent had it do.
type fakeHost struct {
	mu        sync.Mutex
	addresses map[string][]netip.Prefix
	outcome   agent.Outcome
	err       error // Apply's error, when set
	applied   []string
	checks    []fleet.Checks // each Apply's
	removed   int
	drifted   []drift.Finding // what Verify finds
	verifyErr error           // what Verify fails with, when set
	verifies  int
	// When block is set, Apply says so on started and waits for block to close.
	block, started chan struct{}
}

// newHost is a node with eth-a and eth-b on the policy's subnets, host number n.
func newHost(n int) *fakeHost {
	return &fakeHost{
		addresses: map[string][]netip.Prefix{
			"eth-a": {netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, 1, byte(10 + n)}), 24)},
			"eth-b": {netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + n)}), 24)},
		},
		outcome: agent.Outcome{Verified: true, Message: "verify passes"},
	}
}

func (h *fakeHost) Addresses() (map[string][]netip.Prefix, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.addresses, nil
}

func (h *fakeHost) Apply(ctx context.Context, description []byte, checks fleet.Checks) (agent.Outcome, error) {
	h.mu.Lock()
	block, started := h.block, h.started
	h.applied = append(h.applied, string(description))
	h.checks = append(h.checks, checks)
	outcome, err := h.outcome, h.err
	h.mu.Unlock()
	if block != nil {
		started <- struct{}{}
		select {
		case <-block:
		case <-ctx.Done():
			return agent.Outcome{}, ctx.Err()
		}
	}
	return outcome, err
}

func (h *fakeHost) Remove(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removed++
	return nil
}

func (h *fakeHost) Verify(context.Context, []byte) (drift.Result, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.verifies++
	if h.verifyErr != nil {
		return drift.Result{}, h.verifyErr
	}
	return drift.Result{Interfaces: []string{"eth-a", "eth-b"}, Findings: h.drifted}, nil
}

func (h *fakeHost) drift(findings ...drift.Finding) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drifted = findings
}

func (h *fakeHost) counts() (applied, removed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.applied), h.removed
}
