//go:build kubetest

package integration

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/symroute/symroute/internal/orchestration/agent"
	"github.com/symroute/symroute/internal/tools/kubetest"
	"github.com/symroute/symroute/internal/tools/nettest"
)

// agentNamespace is the agent's, as packaging/kubernetes/rbac.yaml names it: its service account and the
// rollout's Leases live there.
const agentNamespace = "symroute"

// The agents' bounds: a site's networkd takes a change up in well under a second, and a try whose check fails
// rolls back at its deadline (wait plus checks), so short bounds keep the failing scenario short. The lease's
// duration is short enough that the failing try renews it.
var agentFlags = []string{"--namespace", agentNamespace, "--resync", "10m", "--lease-duration", "15s", "--wait", "10s", "--checks-timeout", "4s"}

// rolloutLimit bounds a rollout over the three nodes, one at a time, on a loaded two-core machine.
const rolloutLimit = 90 * time.Second

// buildAgent builds cmd/symroute-agent beside the symroute binary, once: the real agent runs inside each node's
// host namespace.
var buildAgent = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "symroute-agent")
	if out, err := exec.Command("go", "build", "-o", bin, "../../../cmd/symroute-agent").CombinedOutput(); err != nil {
		return "", &buildError{err, string(out)}
	}
	return bin, nil
})

func agentBinary(t *testing.T) string {
	t.Helper()
	symrouteBinary(t) // makes binDir
	bin, err := buildAgent()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// fleetDescription is the two-NIC host's description without its addresses: one description for many nodes, each
// node's links giving their own. topLevel lines go after the version.
func fleetDescription(rpFilter string, topLevel ...string) string {
	var lines []string
	for _, l := range strings.Split(nettest.Description(rpFilter, topLevel...), "\n") {
		if !strings.Contains(l, "addresses:") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// fleetNode is one node: a site whose links networkd configures from files of the node's own, its Node object and
// its agent.
type fleetNode struct {
	*site
	name  string
	agent *nettest.Daemon
	// files and rules are the node's before any agent ran: etc under its root, and ip rule.
	files map[string][]byte
	rules string
}

// fleet is the cluster: a real API server with symroute's CRDs and RBAC, the admin's clients (the test sets the
// scene and reads the results with them), the agents' service account's clients, and the nodes.
type fleet struct {
	server      *kubetest.Server
	kube        kubernetes.Interface
	dyn         dynamic.Interface
	agentKube   kubernetes.Interface
	agentDyn    dynamic.Interface
	agentConfig string // the first node's kubeconfig, to show what the agents hold
	nodes       []*fleetNode
	// single is a site of its own, where the test times symroute apply.
	single *site
	rec    *recorder
}

// nodeSites builds n sites as a node is before the agent: its links configured by networkd from the node's own
// files, the asymmetric path broken. networkd takes seconds to call a link configured the first time, so the
// sites are built first and waited for together.
func nodeSites(t *testing.T, n int) []*site {
	t.Helper()
	var sites []*site
	for range n {
		s := buildSite(t, "", false)
		s.writeFile("etc/systemd/network/50-eth-a.network", "[Match]\nName=eth-a\n\n[Network]\nAddress="+hostA+"/24\nGateway=192.168.1.1\n")
		s.writeFile("etc/systemd/network/50-eth-b.network", "[Match]\nName=eth-b\n\n[Network]\nAddress="+hostB+"/24\n")
		s.reloadNetworkd()
		sites = append(sites, s)
	}
	for _, s := range sites {
		s.Networkd.WaitConfigured(t, s.Host, 30*time.Second, "eth-a", "eth-b")
	}
	// Each failing flow takes the client's whole timeout: they run side by side.
	reached := make([]error, n)
	var clients sync.WaitGroup
	for i, s := range sites {
		clients.Go(func() { reached[i] = s.clientReachesA() })
	}
	clients.Wait()
	for i, err := range reached {
		if err == nil {
			t.Fatalf("site %d: before the agent the client reached %s, but the asymmetric path should have broken the flow; the scenario proves nothing", i+1, hostA)
		}
	}
	return sites
}

func startFleet(t *testing.T, labels ...map[string]string) *fleet {
	t.Helper()
	started := time.Now()
	f := &fleet{server: kubetest.Start(t)}
	f.kube, f.dyn = kubetest.Clients(t, f.server.AdminConfig(t))
	if _, err := f.kube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: agentNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	manifests, err := filepath.Glob("../../../packaging/kubernetes/crd-*.yaml")
	if err != nil || len(manifests) != 2 {
		t.Fatalf("CRDs %v: %v", manifests, err)
	}
	f.server.CreateManifests(t, append(manifests, "../../../packaging/kubernetes/rbac.yaml", "../../../packaging/kubernetes/admission.yaml")...)
	token := f.server.ServiceAccountToken(t, agentNamespace, "symroute-agent")
	f.agentKube, f.agentDyn = kubetest.Clients(t, f.server.TokenConfig(token))
	// The RBAC authorizer learns of the new bindings from its own watch.
	waitUntil(t, "the service account's bindings to take effect", 30*time.Second, func() bool {
		_, err := f.agentDyn.Resource(agent.PolicyResource).List(t.Context(), metav1.ListOptions{})
		return err == nil
	})
	t.Logf("control plane with symroute's CRDs and RBAC ready in %v", time.Since(started).Round(time.Millisecond))

	ctx, stopWatching := context.WithCancel(t.Context())
	f.rec = &recorder{states: map[string]nodeState{}}
	t.Cleanup(stopWatching) // before the API server stops
	f.rec.watchStates(t, ctx, f.dyn)
	f.rec.watchLeases(t, ctx, f.kube)

	bin := agentBinary(t)
	t.Logf("agent built %v after the start", time.Since(started).Round(time.Millisecond))
	// One site more than there are nodes: symroute apply runs there, for comparison.
	sites := nodeSites(t, len(labels)+1)
	f.single = sites[len(labels)]
	t.Logf("%d sites ready %v after the start", len(sites), time.Since(started).Round(time.Millisecond))
	apiServer := strings.TrimPrefix(f.server.URL, "https://")
	for i, l := range labels {
		n := &fleetNode{site: sites[i], name: fmt.Sprintf("n%d", i+1)}
		n.files, n.rules = n.tree("etc"), n.Host.IP("rule")
		f.rec.watchRoutes(t, n.name, n.Host)
		if _, err := f.kube.CoreV1().Nodes().Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: l}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The API server listens on the root namespace's loopback; the node reaches it on its own loopback.
		// Each agent's token is bound to its Node, as the kubelet binds a pod's, so the admission policy holds it
		// to its own node's objects.
		kubeconfig := f.server.TokenKubeconfig(t, n.name+".kubeconfig", "https://"+n.Host.Forward(t, apiServer),
			f.server.NodeToken(t, agentNamespace, "symroute-agent", n.name))
		if f.agentConfig == "" {
			f.agentConfig = kubeconfig
		}
		n.agent = nettest.StartDaemon(t, n.Host, n.Bus, []string{"NODE_NAME=" + n.name}, bin,
			append([]string{"--kubeconfig", kubeconfig, "--root", n.Root}, agentFlags...)...)
		f.nodes = append(f.nodes, n)
	}
	t.Cleanup(func() {
		for _, n := range f.nodes {
			if t.Failed() {
				t.Logf("%s's agent's log:\n%s", n.name, n.agent.Log())
			}
		}
	})
	for _, n := range f.nodes {
		f.waitLog(t, n, "following the RoutingPolicies", 30*time.Second)
		// ip netns exec has exec'd the agent by now, in its own place.
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", n.agent.Pid())); err != nil || strings.TrimSpace(string(comm)) != "symroute-agent" {
			t.Fatalf("%s: pid %d is %q (%v), not the agent: the figures would measure another program", n.name, n.agent.Pid(), comm, err)
		}
	}
	t.Logf("%d nodes with their agents running %v after the start", len(f.nodes), time.Since(started).Round(time.Millisecond))
	return f
}

// nodeCondition is node's SymrouteVerified condition; nil when it has none.
func (f *fleet) nodeCondition(t *testing.T, node string) *corev1.NodeCondition {
	t.Helper()
	n, err := f.kube.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return agent.Condition(n)
}

// waitUntil polls ok until it holds; a bound against a hang, not an assertion on time.
func waitUntil(t *testing.T, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLog waits until the node's agent has logged a line containing text.
func (f *fleet) waitLog(t *testing.T, n *fleetNode, text string, limit time.Duration) {
	t.Helper()
	f.checkAgents(t)
	waitUntil(t, fmt.Sprintf("%q in %s's agent's log", text, n.name), limit, func() bool {
		f.checkAgents(t)
		return strings.Contains(n.agent.Log(), text)
	})
}

// checkAgents fails the test when an agent has exited: every agent runs until the test ends.
func (f *fleet) checkAgents(t *testing.T) {
	t.Helper()
	for _, n := range f.nodes {
		select {
		case <-n.agent.Exited():
			t.Fatalf("%s's agent exited:\n%s", n.name, n.agent.Log())
		default:
		}
	}
}

// nodeState is a RoutingNodeState's status, as the admin's watch last saw it.
type nodeState struct {
	Policy     string
	Generation int64
	Result     string
	Message    string
}

type leaseEvent struct {
	at, acquired  time.Time
	lease, holder string
}

type routeEvent struct {
	at   time.Time
	node string
	what string
}

// recorder keeps what the admin's watches and the nodes' route monitors saw, with when it arrived: the node states
// (to wait on them and time the rollout), the Leases (who held a rollout slot when) and the routes changed in
// every table but main, local and default (what symroute's routing, and nothing else on a node, changes).
type recorder struct {
	mu       sync.Mutex
	states   map[string]nodeState
	stateAt  time.Time
	verified []routeEvent // when each node's state said Verified
	leases   []leaseEvent
	routes   []routeEvent
	problems []string
}

func (r *recorder) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func (r *recorder) watchStates(t *testing.T, ctx context.Context, dyn dynamic.Interface) {
	t.Helper()
	follow(t, ctx, r, "RoutingNodeStates", dyn.Resource(agent.NodeStateResource).Watch, func(typ watch.EventType, u *unstructured.Unstructured, at time.Time) {
		var s nodeState
		s.Policy, _, _ = unstructured.NestedString(u.Object, "status", "policy")
		s.Generation, _, _ = unstructured.NestedInt64(u.Object, "status", "appliedGeneration")
		s.Result, _, _ = unstructured.NestedString(u.Object, "status", "result")
		s.Message, _, _ = unstructured.NestedString(u.Object, "status", "message")
		r.mu.Lock()
		defer r.mu.Unlock()
		if typ == watch.Deleted {
			delete(r.states, u.GetName())
		} else {
			if s.Result == "Verified" && r.states[u.GetName()] != s {
				r.verified = append(r.verified, routeEvent{at: at, node: u.GetName(), what: fmt.Sprintf("%s generation %d", s.Policy, s.Generation)})
			}
			r.states[u.GetName()] = s
		}
		r.stateAt = at
	})
}

func (r *recorder) watchLeases(t *testing.T, ctx context.Context, kube kubernetes.Interface) {
	t.Helper()
	follow(t, ctx, r, "Leases", kube.CoordinationV1().Leases(agentNamespace).Watch, func(typ watch.EventType, l *coordinationv1.Lease, at time.Time) {
		ev := leaseEvent{at: at, lease: l.Name}
		if l.Spec.HolderIdentity != nil && typ != watch.Deleted {
			ev.holder = *l.Spec.HolderIdentity
		}
		if l.Spec.AcquireTime != nil {
			ev.acquired = l.Spec.AcquireTime.Time
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.leases = append(r.leases, ev)
	})
}

// follow starts a watch and hands each object it sends to handle, with the time it arrived, until ctx ends. An
// event without such an object (the watch's error) and a watch that ends before ctx are problems the waits report.
func follow[O any](t *testing.T, ctx context.Context, r *recorder, what string, start func(context.Context, metav1.ListOptions) (watch.Interface, error),
	handle func(watch.EventType, O, time.Time)) {
	t.Helper()
	w, err := start(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watch %s: %v", what, err)
	}
	go func() {
		defer w.Stop()
		for e := range w.ResultChan() {
			at := time.Now()
			if o, ok := e.Object.(O); ok {
				handle(e.Type, o, at)
			} else {
				r.problem("the watch of %s: %v", what, e.Object)
			}
		}
		if ctx.Err() == nil {
			r.problem("the watch of %s ended", what)
		}
	}()
}

// watchRoutes records the route changes in the node's host namespace outside main, local and default.
func (r *recorder) watchRoutes(t *testing.T, node string, ns *nettest.Netns) {
	t.Helper()
	handle, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer handle.Close()
	updates, done := make(chan netlink.RouteUpdate, 256), make(chan struct{})
	err = netlink.RouteSubscribeWithOptions(updates, done, netlink.RouteSubscribeOptions{
		Namespace:     &handle,
		ErrorCallback: func(err error) { r.problem("%s's route monitor: %v", node, err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(done) })
	go func() {
		for u := range updates {
			if u.Table == 0 || u.Table >= 253 && u.Table <= 255 {
				continue
			}
			what := "add"
			if u.Type == syscall.RTM_DELROUTE {
				what = "delete"
			}
			r.mu.Lock()
			r.routes = append(r.routes, routeEvent{at: time.Now(), node: node, what: fmt.Sprintf("%s %s table %d", what, u.Dst, u.Table)})
			r.mu.Unlock()
		}
	}()
}

// waitStates waits until cond holds of the node states as the watch has them, and returns when the event that made
// it hold arrived.
func (f *fleet) waitStates(t *testing.T, what string, limit time.Duration, cond func(map[string]nodeState) bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		f.rec.mu.Lock()
		ok, at, seen, problems := cond(f.rec.states), f.rec.stateAt, fmt.Sprintf("%+v", f.rec.states), slices.Clone(f.rec.problems)
		f.rec.mu.Unlock()
		switch {
		case ok:
			return at
		case len(problems) > 0:
			t.Fatalf("waiting for %s: %s", what, strings.Join(problems, "; "))
		case time.Now().After(deadline):
			t.Fatalf("no %s within %v; the node states: %s", what, limit, seen)
		}
		f.checkAgents(t)
		time.Sleep(20 * time.Millisecond)
	}
}

// each is a condition that holds when every named node's state has result at generation gen of policy.
func each(policy string, gen int64, result string, nodes ...string) func(map[string]nodeState) bool {
	return func(states map[string]nodeState) bool {
		for _, n := range nodes {
			if s := states[n]; s.Policy != policy || s.Generation != gen || s.Result != result {
				return false
			}
		}
		return true
	}
}

func (f *fleet) state(node string) (nodeState, bool) {
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	s, ok := f.rec.states[node]
	return s, ok
}

// setPolicy creates policy name with spec, or replaces its spec, and returns the generation the API server gave
// it. The agents write its status meanwhile, so a conflict is read again and retried.
func (f *fleet) setPolicy(t *testing.T, name string, spec map[string]any) int64 {
	t.Helper()
	policies := f.dyn.Resource(agent.PolicyResource)
	var gen int64
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		u, err := policies.Get(t.Context(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			u = &unstructured.Unstructured{Object: map[string]any{"apiVersion": "symroute.io/v1alpha1", "kind": "RoutingPolicy",
				"metadata": map[string]any{"name": name}, "spec": spec}}
			u, err = policies.Create(t.Context(), u, metav1.CreateOptions{})
		} else if err == nil {
			u.Object["spec"] = spec
			u, err = policies.Update(t.Context(), u, metav1.UpdateOptions{})
		}
		if err == nil {
			gen = u.GetGeneration()
		}
		return err
	})
	if err != nil {
		t.Fatalf("policy %s: %v", name, err)
	}
	return gen
}

func (f *fleet) deletePolicy(t *testing.T, name string) {
	t.Helper()
	if err := f.dyn.Resource(agent.PolicyResource).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (f *fleet) relabel(t *testing.T, node string, labels map[string]string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := f.kube.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Labels = labels
		_, err = f.kube.CoreV1().Nodes().Update(t.Context(), n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// policyStatus is the policy's status as the API server holds it now.
func (f *fleet) policyStatus(t *testing.T, name string) map[string]any {
	t.Helper()
	u, err := f.dyn.Resource(agent.PolicyResource).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, _, _ := unstructured.NestedMap(u.Object, "status")
	return s
}

// wantPolicyStatus waits until the policy's status has the fields given (by their JSON values): an agent writes
// the counts just after its own state, so they may follow the state the test waited on by a moment.
func (f *fleet) wantPolicyStatus(t *testing.T, name string, fields map[string]any) map[string]any {
	t.Helper()
	var status map[string]any
	matches := func() bool {
		status = f.policyStatus(t, name)
		for k, v := range fields {
			if fmt.Sprint(status[k]) != fmt.Sprint(v) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(30 * time.Second)
	for !matches() {
		if time.Now().After(deadline) {
			t.Fatalf("policy %s's status is %v, want %v", name, status, fields)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return status
}

// rollOut sets policy name's spec and waits until every named node has verified the generation that makes; it
// returns the generation, when the spec was set and when the last node's Verified arrived.
func (f *fleet) rollOut(t *testing.T, name string, spec map[string]any, nodes ...string) (gen int64, set, done time.Time) {
	t.Helper()
	set = time.Now()
	gen = f.setPolicy(t, name, spec)
	done = f.waitStates(t, fmt.Sprintf("%s Verified at generation %d of %s", strings.Join(nodes, ", "), gen, name), rolloutLimit,
		each(name, gen, "Verified", nodes...))
	return gen, set, done
}

func spec(desc string, selector map[string]any, maxUnavailable any) map[string]any {
	return map[string]any{"description": desc, "nodeSelector": selector, "rollout": map[string]any{"maxUnavailable": maxUnavailable}}
}

// symrouteTables are the routes of the node's host namespace outside main, local and default.
func (n *fleetNode) symrouteTables() []string {
	var out []string
	for _, l := range strings.Split(n.Host.IP("route", "show", "table", "all"), "\n") {
		if strings.Contains(l, " table ") && !strings.Contains(l, " table local") && !strings.Contains(l, " table default") {
			out = append(out, l)
		}
	}
	return out
}

// untouched fails the test unless the node has no file of symroute's anywhere under its root, besides what
// routingAsBefore checks.
func (n *fleetNode) untouched(t *testing.T, when string) {
	t.Helper()
	for p := range n.tree("") {
		if strings.Contains(p, "symroute") {
			t.Errorf("%s, %s: %s has a file of symroute's: %s", when, n.name, n.name, p)
		}
	}
	n.routingAsBefore(t, when)
}

// routingAsBefore fails the test unless the node's files under etc and its rules are as before any agent ran, and
// no table of symroute's has a route.
func (n *fleetNode) routingAsBefore(t *testing.T, when string) {
	t.Helper()
	n.sameFiles(t, when, n.files)
	n.sameRules(t, when, n.rules)
	if tables := n.symrouteTables(); len(tables) > 0 {
		t.Errorf("%s, %s: routes in symroute's tables:\n%s", when, n.name, strings.Join(tables, "\n"))
	}
}

func (n *fleetNode) sameFiles(t *testing.T, when string, files map[string][]byte) {
	t.Helper()
	if now := n.tree("etc"); !maps.EqualFunc(now, files, bytes.Equal) {
		t.Errorf("%s, %s: its files changed: %v, before %v", when, n.name, keys(now), keys(files))
	}
}

func (n *fleetNode) sameRules(t *testing.T, when, rules string) {
	t.Helper()
	if now := n.Host.IP("rule"); now != rules {
		t.Errorf("%s, %s: its rules changed:\n%s\nbefore:\n%s", when, n.name, now, rules)
	}
}

// configured fails the test unless symroute's routing is on the node and does what it is for: the LAN client
// reaches the host's first-NIC address through the stateful gateway.
func (n *fleetNode) configured(t *testing.T, when string) {
	t.Helper()
	if rules := n.Host.IP("rule"); !strings.Contains(rules, "from "+hostA+" lookup") {
		t.Errorf("%s, %s: no rule from %s:\n%s", when, n.name, hostA, rules)
	}
	if err := n.clientReachesA(); err != nil {
		t.Errorf("%s, %s: the client cannot reach %s through the gateway: %v", when, n.name, hostA, err)
	}
}

// removed fails the test unless symroute's routing is gone from the node as the agent's remove leaves it: the
// rules as before any agent ran, no route in symroute's tables, the node's own files as they were, symroute's own
// .network files (they give the links their addresses) stripped of routing, no other file of symroute's, and the
// asymmetric path broken again.
func (n *fleetNode) removed(t *testing.T, when string) {
	t.Helper()
	n.sameRules(t, when, n.rules)
	if tables := n.symrouteTables(); len(tables) > 0 {
		t.Errorf("%s, %s: routes in symroute's tables:\n%s", when, n.name, strings.Join(tables, "\n"))
	}
	now := n.tree("etc")
	for p, data := range now {
		switch {
		case strings.HasPrefix(p, "systemd/network/10-symroute-"):
			if strings.Contains(string(data), "RoutingPolicyRule") || strings.Contains(string(data), "Table=") {
				t.Errorf("%s, %s: %s has routing in it:\n%s", when, n.name, p, data)
			}
		case strings.HasPrefix(p, "symroute/"):
		case !bytes.Equal(n.files[p], data):
			t.Errorf("%s, %s: %s is not as before the agent:\n%s", when, n.name, p, data)
		}
	}
	for p := range n.files {
		if now[p] == nil {
			t.Errorf("%s, %s: its own file %s is gone", when, n.name, p)
		}
	}
	if err := n.clientReachesA(); err == nil {
		t.Errorf("%s, %s: the client reached %s, so symroute's routing is still there or the check proves nothing", when, n.name, hostA)
	}
}

// hold is a node's hold of a rollout slot: from its acquisition to the Lease event that showed it released (or
// taken by another), or still held when until is zero.
type hold struct {
	lease, node string
	from, until time.Time
}

// holds replays the Lease events of policy's slots into each hold.
func (r *recorder) holds(policy string) []hold {
	r.mu.Lock()
	defer r.mu.Unlock()
	return replayHolds(r.leases, policy)
}

func replayHolds(events []leaseEvent, policy string) []hold {
	var out []hold
	open := map[string]hold{}
	for _, e := range events {
		if !strings.HasPrefix(e.lease, "symroute-"+policy+"-") {
			continue
		}
		h, held := open[e.lease]
		if held && h.node == e.holder {
			continue // a renewal
		}
		if held {
			h.until = e.at
			out = append(out, h)
			delete(open, e.lease)
		}
		if e.holder != "" {
			from := e.at
			if !e.acquired.IsZero() && e.acquired.Before(from) {
				from = e.acquired
			}
			open[e.lease] = hold{lease: e.lease, node: e.holder, from: from}
		}
	}
	for _, h := range open {
		out = append(out, h)
	}
	return out
}

// covers says whether the hold was on at.
func (h hold) covers(at time.Time) bool {
	return !at.Before(h.from) && (h.until.IsZero() || !at.After(h.until))
}

// heldBy says whether node held a slot at at.
func heldBy(holds []hold, node string, at time.Time) bool {
	return slices.ContainsFunc(holds, func(h hold) bool { return h.node == node && h.covers(at) })
}

// heldByAnother says whether a node other than node held a slot at at.
func heldByAnother(holds []hold, node string, at time.Time) bool {
	return slices.ContainsFunc(holds, func(h hold) bool { return h.node != node && h.covers(at) })
}

// mostHeldAtOnce is how many of the holds overlapped at most.
func mostHeldAtOnce(holds []hold) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, h := range holds {
		edges = append(edges, edge{h.from, 1})
		if !h.until.IsZero() {
			edges = append(edges, edge{h.until, -1})
		}
	}
	// A release and an acquisition at the same instant do not overlap.
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].at.Before(edges[j].at)
	})
	held, most := 0, 0
	for _, e := range edges {
		held += e.delta
		most = max(most, held)
	}
	return most
}

// verifiedSince are the nodes' states turning Verified since from, in order.
func (r *recorder) verifiedSince(from time.Time) []routeEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []routeEvent
	for _, e := range r.verified {
		if !e.at.Before(from) {
			out = append(out, e)
		}
	}
	return out
}

// routesBetween are the route changes of each node between from and until.
func (r *recorder) routesBetween(from, until time.Time) map[string][]routeEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]routeEvent{}
	for _, e := range r.routes {
		if !e.at.Before(from) && !e.at.After(until) {
			out[e.node] = append(out[e.node], e)
		}
	}
	return out
}

// changesOnlyWhileHolding checks what the rollout of policy between from and until did on the machines against
// its Leases: every node changed its routes, each change fell within a hold of a slot by that node, and at no time
// did more than budget nodes hold one. It returns how many held one at once at most and how many route changes a
// node made while another held a slot (that is, before the other's change was confirmed and recorded), and logs
// each node's changes and holds.
func (f *fleet) changesOnlyWhileHolding(t *testing.T, policy string, from, until time.Time, budget int) (most, duringOthers int) {
	t.Helper()
	holds := f.rec.holds(policy)
	routes := f.rec.routesBetween(from, until)
	for _, n := range f.nodes {
		changes := routes[n.name]
		if len(changes) == 0 {
			t.Errorf("%s changed no route in symroute's tables during the rollout: the check of when it changed proves nothing", n.name)
			continue
		}
		var mine []string
		for _, h := range holds {
			if h.node != n.name || h.from.After(until) || !h.until.IsZero() && h.until.Before(from) {
				continue
			}
			to := "still held"
			if !h.until.IsZero() {
				to = fmt.Sprintf("to +%v", h.until.Sub(from).Round(time.Millisecond))
			}
			mine = append(mine, fmt.Sprintf("%s from +%v %s", h.lease, h.from.Sub(from).Round(time.Millisecond), to))
		}
		verified := "not seen"
		if i := slices.IndexFunc(f.rec.verifiedSince(from), func(e routeEvent) bool { return e.node == n.name }); i >= 0 {
			verified = fmt.Sprintf("+%v", f.rec.verifiedSince(from)[i].at.Sub(from).Round(time.Millisecond))
		}
		t.Logf("%s: %d route changes from +%v to +%v, Verified at %s; its holds: %s", n.name, len(changes), changes[0].at.Sub(from).Round(time.Millisecond),
			changes[len(changes)-1].at.Sub(from).Round(time.Millisecond), verified, strings.Join(mine, ", "))
		for _, c := range changes {
			if !heldBy(holds, n.name, c.at) {
				t.Errorf("%s changed a route (%s) at +%v holding no rollout slot", n.name, c.what, c.at.Sub(from).Round(time.Millisecond))
			}
			if heldByAnother(holds, n.name, c.at) {
				duringOthers++
			}
		}
	}
	most = mostHeldAtOnce(holds)
	if most > budget {
		t.Errorf("%d nodes held a rollout slot of %s at once, with maxUnavailable %d: %+v", most, policy, budget, holds)
	}
	return most, duringOthers
}

// cpuTicks are the process's user and system time, in clock ticks, from /proc/<pid>/stat.
func cpuTicks(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command's closing parenthesis start with the third, the state; utime and stime are
	// the 14th and 15th.
	i := strings.LastIndex(string(data), ") ")
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, data)
	}
	fields := strings.Fields(string(data)[i+2:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, data)
	}
	var sum int64
	for _, field := range fields[11:13] {
		v, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %v", pid, err)
		}
		sum += v
	}
	return sum, nil
}

var (
	edgeSelector = map[string]any{"matchLabels": map[string]any{"role": "edge"}}
	// everySelector picks the three nodes by their labels; a node without the role label leaves it.
	everySelector = map[string]any{"matchExpressions": []any{map[string]any{"key": "role", "operator": "In", "values": []any{"edge", "db"}}}}
)

// TestFleetFollowsRoutingPolicies: three nodes, each a network-namespace site with the real systemd-networkd, a
// real kube-apiserver and etcd, and the real symroute-agent running on each node inside its host namespace as the
// DaemonSet's service account (its token alone, RBAC from packaging/kubernetes/rbac.yaml). In sequence: the
// agents' token may not do what the account is not granted; a policy whose description does not hold shows its
// problem, with its line, in its status and changes no node's routing, applied or deleted; a policy rolls out to
// the two nodes its selector picks, whose clients then reach the host's first-NIC address, and not to the third,
// and deleted is removed from both. A policy for all three rolls out one node at a time (each route change falls
// within that node's hold of the one slot), then its spec change does; a gateway that drops echo requests makes
// its node roll the next generation back, which stops the rollout before the nodes later in the order; with
// maxUnavailable 3 nodes hold slots and change at once; a node whose label is removed removes the policy while the
// others keep it; deleting the policy removes it everywhere. The figures: the time from a policy's create and
// from its spec change to every node verified, against symroute apply on one site, and the agents' memory and CPU
// at rest.
func TestFleetFollowsRoutingPolicies(t *testing.T) {
	started := time.Now()
	f := startFleet(t, map[string]string{"role": "edge"}, map[string]string{"role": "edge"}, map[string]string{"role": "db"})
	n1, n2, n3 := f.nodes[0], f.nodes[1], f.nodes[2]

	t.Log("RBAC: the agents' token is the service account's, and it may not do what the account is not granted")
	f.serviceAccountOnly(t)

	t.Log("validation: a description with a problem puts it in the policy's status, with its line, and changes nothing")
	broken := fleetDescription("loose") + "    priority: 40000\n"
	gen := f.setPolicy(t, "fleet", spec(broken, edgeSelector, 1))
	f.waitStates(t, "n1 and n2 Invalid", rolloutLimit, each("fleet", 0, "Invalid", "n1", "n2"))
	status := f.wantPolicyStatus(t, "fleet", map[string]any{"observedGeneration": gen, "nodes": 2, "verified": 0, "failed": 0})
	problems, _ := status["problems"].([]any)
	if len(problems) != 1 {
		t.Errorf("the policy's problems: %v, want the priority's", status["problems"])
	} else if p, _ := problems[0].(map[string]any); fmt.Sprint(p["severity"]) != "error" || fmt.Sprint(p["line"]) != "10" || fmt.Sprint(p["path"]) != "interfaces[1].priority" {
		t.Errorf("the problem: %v, want an error on line 10 at interfaces[1].priority", p)
	}
	if s, _ := f.state("n1"); !strings.Contains(s.Message, "line 10: interfaces[1].priority") {
		t.Errorf("n1's message does not name the problem and its line: %q", s.Message)
	}
	for _, n := range f.nodes {
		n.untouched(t, "with the broken description")
	}
	if _, ok := f.state("n3"); ok {
		t.Error("n3, which the policy does not select, has a state")
	}

	// Deleted, the policy that held on no node leaves every node as it was.
	f.deletePolicy(t, "fleet")
	f.waitStates(t, "n1 and n2 to leave fleet", rolloutLimit, func(states map[string]nodeState) bool {
		return states["n1"].Policy == "" && states["n2"].Policy == ""
	})
	// n1 and n2 run symroute's remove (their state said Invalid, which does not say whether an earlier policy
	// left anything): it changes no routing and no file under etc, but leaves var/lib/symroute/record.json.
	n1.routingAsBefore(t, "the broken description deleted")
	n2.routingAsBefore(t, "the broken description deleted")
	n3.untouched(t, "the broken description deleted")
	if t.Failed() {
		return
	}

	t.Log("selection by labels: a policy rolls out to n1 and n2 and leaves n3 alone")
	gen, created, done := f.rollOut(t, "fleet", spec(fleetDescription("loose"), edgeSelector, 1), "n1", "n2")
	t.Logf("figure: policy create to both selected nodes verified: %v (two nodes, maxUnavailable 1)", done.Sub(created).Round(time.Millisecond))
	f.wantPolicyStatus(t, "fleet", map[string]any{"observedGeneration": gen, "nodes": 2, "verified": 2, "failed": 0, "rollout": "Complete", "problems": []any{}})
	n1.configured(t, "fleet verified")
	n2.configured(t, "fleet verified")
	n3.expectClient(false, "n3, which fleet does not select")
	n3.untouched(t, "fleet verified on n1 and n2")
	if _, ok := f.state("n3"); ok {
		t.Error("n3, which the policy does not select, has a state")
	}

	t.Log("deletion: the policy's configuration is removed from every node that had it")
	f.deletePolicy(t, "fleet")
	f.waitStates(t, "n1 and n2 Removed", rolloutLimit, each("", 0, "Removed", "n1", "n2"))
	n1.removed(t, "fleet deleted")
	n2.removed(t, "fleet deleted")
	n3.untouched(t, "fleet deleted")
	if t.Failed() {
		return
	}

	t.Log("maxUnavailable 1: a policy for all three nodes changes one node at a time")
	gen, created, done = f.rollOut(t, "every", spec(fleetDescription("loose"), everySelector, 1), "n1", "n2", "n3")
	t.Logf("figure: policy create to all three nodes verified: %v (maxUnavailable 1)", done.Sub(created).Round(time.Millisecond))
	if most, duringOthers := f.changesOnlyWhileHolding(t, "every", created, done, 1); most != 1 || duringOthers != 0 {
		t.Errorf("with maxUnavailable 1, at most %d nodes held a slot at once (want 1: none seen is no check) and %d route changes were made while another node held the slot", most, duringOthers)
	}
	f.wantPolicyStatus(t, "every", map[string]any{"observedGeneration": gen, "nodes": 3, "verified": 3, "failed": 0, "rollout": "Complete"})
	for _, n := range f.nodes {
		n.configured(t, "every verified")
	}

	t.Log("a spec change (rp_filter strict) rolls out to all three nodes")
	gen, changed, done := f.rollOut(t, "every", spec(fleetDescription("strict"), everySelector, 1), "n1", "n2", "n3")
	t.Logf("figure: spec change to all three nodes verified: %v (maxUnavailable 1)", done.Sub(changed).Round(time.Millisecond))
	f.wantPolicyStatus(t, "every", map[string]any{"observedGeneration": gen, "nodes": 3, "verified": 3, "rollout": "Complete"})
	for _, n := range f.nodes {
		if v := n.Host.Exec("sysctl", "-n", "net.ipv4.conf.eth-a.rp_filter"); strings.TrimSpace(v) != "1" {
			t.Errorf("%s: eth-a's rp_filter is %s after the strict generation", n.name, v)
		}
		n.configured(t, "every strict")
	}

	t.Log("a rule deleted on n1 is drift the agent sees through its netlink watch; networkd restarted mends it")
	n1 = f.nodes[0]
	deleted := time.Now()
	n1.Host.IP("rule", "del", "from", hostA)
	f.waitStates(t, "n1 drifted after its rule was deleted", 30*time.Second, each("every", gen, "Drifted", "n1"))
	t.Logf("figure: a deleted rule to the node's state Drifted: %v (the agent waits for 2 s of quiet)", time.Since(deleted).Round(time.Millisecond))
	if s, _ := f.state("n1"); !strings.Contains(s.Message, hostA) {
		t.Errorf("n1's drift does not name the deleted rule's address: %q", s.Message)
	}
	f.wantPolicyStatus(t, "every", map[string]any{"verified": 2, "drifted": 1, "rollout": "Complete"})
	if c := f.nodeCondition(t, "n1"); c == nil || c.Status != corev1.ConditionFalse || c.Reason != "Drifted" {
		t.Errorf("n1's Node condition while drifted: %+v", c)
	}
	n1.RestartNetworkd()
	n1.Networkd.WaitConfigured(t, n1.Host, 30*time.Second, "eth-a", "eth-b")
	f.waitStates(t, "n1 verified once networkd put its rule back", 30*time.Second, each("every", gen, "Verified", "n1"))
	if c := f.nodeCondition(t, "n1"); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("n1's Node condition once mended: %+v", c)
	}
	n1.configured(t, "mended")

	t.Log("with n3's agent down, n3 comes back as from a reboot: networkd's files alone give it its routing")
	if err := n3.agent.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	n3.Networkd.Stop()
	for _, link := range []string{"eth-a", "eth-b"} {
		n3.Host.IP("-4", "addr", "flush", "dev", link) // a link comes up with its IPv6 link-local address only
	}
	n3.Host.IP("rule", "del", "from", hostA)
	if tables := n3.symrouteTables(); len(tables) > 0 {
		t.Errorf("n3's tables after the addresses went: %v", tables)
	}
	n3.expectClient(false, "n3 with its addresses and rules gone")
	n3.RestartNetworkd()
	n3.Networkd.WaitConfigured(t, n3.Host, 30*time.Second, "eth-a", "eth-b")
	n3.configured(t, "n3 back from networkd's files, its agent down")
	if err := n3.agent.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	f.waitStates(t, "n3 still Verified with its agent back", 30*time.Second, each("every", gen, "Verified", "n3"))

	t.Log("the agents at rest, and symroute apply on one site meanwhile")
	f.atRest(t, f.single)
	if t.Failed() {
		return
	}

	t.Log("a failed probe: n2's gateway drops echo requests; n2 rolls the next generation back and the rollout stops")
	// n1 and n3 stand for the nodes later in the order: paused, they cannot take the slot before n2.
	strictFiles := map[string]map[string][]byte{}
	strictRules := map[string]string{}
	for _, n := range f.nodes {
		strictFiles[n.name], strictRules[n.name] = n.tree("etc"), n.Host.IP("rule")
	}
	n2.GW.Exec("nft", "add table inet fleettest; add chain inet fleettest in { type filter hook input priority 0; }; add rule inet fleettest in icmp type echo-request drop")
	for _, n := range []*fleetNode{n1, n3} {
		if err := n.agent.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	stoppedGen := gen + 1
	gen = f.setPolicy(t, "every", spec(fleetDescription("loose"), everySelector, 1))
	if gen != stoppedGen {
		t.Fatalf("generation %d, want %d", gen, stoppedGen)
	}
	f.waitStates(t, "n2 RolledBack", rolloutLimit, each("every", gen, "RolledBack", "n2"))
	for _, n := range []*fleetNode{n1, n3} {
		if err := n.agent.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	if s, _ := f.state("n2"); !strings.Contains(s.Message, "gateway 192.168.1.1 (from "+hostA+"): no echo reply") || !strings.Contains(s.Message, "rolled back and checked") {
		t.Errorf("n2's message does not name the silent gateway and the checked rollback: %q", s.Message)
	}
	stopped := fmt.Sprintf("the rollout of generation %d stopped: n2 rolled it back", gen)
	f.waitLog(t, n1, stopped, rolloutLimit)
	f.waitLog(t, n3, stopped, rolloutLimit)
	f.wantPolicyStatus(t, "every", map[string]any{"observedGeneration": gen, "nodes": 3, "verified": 0, "failed": 1, "rollout": "Stopped"})
	for _, n := range f.nodes {
		n.sameFiles(t, "after n2's rollback", strictFiles[n.name])
		n.sameRules(t, "after n2's rollback", strictRules[n.name])
	}
	for _, n := range []string{"n1", "n3"} {
		if s, _ := f.state(n); s.Generation != gen-1 || s.Result != "Verified" {
			t.Errorf("%s, later in the order, is at %+v, want generation %d Verified", n, s, gen-1)
		}
	}
	n2.configured(t, "n2 rolled back to the strict generation")
	n2.GW.Exec("nft", "delete table inet fleettest")
	if t.Failed() {
		return
	}

	t.Log("maxUnavailable 3: the next generation, which moves symroute's tables, may change the nodes at once")
	gen, changed, done = f.rollOut(t, "every", spec(fleetDescription("loose", "table_range: {min: 2000000, max: 2009999}"), everySelector, 3), "n1", "n2", "n3")
	t.Logf("figure: spec change to all three nodes verified: %v (maxUnavailable 3)", done.Sub(changed).Round(time.Millisecond))
	most, duringOthers := f.changesOnlyWhileHolding(t, "every", changed, done, 3)
	t.Logf("with maxUnavailable 3: at most %d nodes held a slot at once; %d route changes were made while another node held one", most, duringOthers)
	if most < 2 {
		t.Errorf("with maxUnavailable 3 the nodes changed one at a time (at most %d held a slot at once)", most)
	}
	f.wantPolicyStatus(t, "every", map[string]any{"observedGeneration": gen, "nodes": 3, "verified": 3, "failed": 0, "rollout": "Complete"})

	t.Log("a node whose label is removed leaves the selector and removes the policy; the others keep it")
	n3Files, n1Files := n3.tree("etc"), n1.tree("etc")
	f.relabel(t, "n3", map[string]string{})
	f.waitStates(t, "n3 Removed", rolloutLimit, each("", 0, "Removed", "n3"))
	n3.removed(t, "n3 relabelled")
	if now := n3.tree("etc"); maps.EqualFunc(now, n3Files, bytes.Equal) {
		t.Error("n3's files did not change when it was relabelled out")
	}
	for _, n := range []*fleetNode{n1, n2} {
		if s, _ := f.state(n.name); s.Policy != "every" || s.Generation != gen || s.Result != "Verified" {
			t.Errorf("%s after n3 left: %+v", n.name, s)
		}
		n.configured(t, "n3 relabelled")
	}
	n1.sameFiles(t, "n3 relabelled", n1Files)
	f.wantPolicyStatus(t, "every", map[string]any{"nodes": 2, "verified": 2, "rollout": "Complete"})

	t.Log("deletion: every node still following the policy removes it")
	f.deletePolicy(t, "every")
	f.waitStates(t, "every node Removed", rolloutLimit, each("", 0, "Removed", "n1", "n2", "n3"))
	for _, n := range f.nodes {
		n.removed(t, "every deleted")
	}
	t.Logf("the scenarios took %v", time.Since(started).Round(time.Millisecond))
	// Not an assertion: a policy deleted while an agent writes its counts is a race the agent retries.
	for _, n := range f.nodes {
		for _, l := range strings.Split(n.agent.Log(), "\n") {
			if strings.Contains(l, "reconcile: ") {
				t.Logf("%s's agent retried a reconcile: %s", n.name, l)
			}
		}
	}
}

// serviceAccountOnly checks that the agents hold the service account's token and nothing more: their kubeconfig
// has no client certificate, the API server takes the token for symroute-agent's account, and that account may
// read the policies but not change their spec, relabel a Node, or take a Lease outside its namespace.
func (f *fleet) serviceAccountOnly(t *testing.T) {
	t.Helper()
	kubeconfig, err := os.ReadFile(f.agentConfig)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kubeconfig), "token: ") || strings.Contains(string(kubeconfig), "client-certificate") {
		t.Errorf("the agents' kubeconfig holds more than a token:\n%s", kubeconfig)
	}
	review, err := f.agentKube.AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if user := review.Status.UserInfo.Username; user != "system:serviceaccount:symroute:symroute-agent" {
		t.Errorf("the agents' token is %s's", user)
	}
	policy := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "symroute.io/v1alpha1", "kind": "RoutingPolicy",
		"metadata": map[string]any{"name": "rbac"}, "spec": map[string]any{"description": fleetDescription("loose"), "nodeSelector": map[string]any{"matchLabels": map[string]any{"role": "none"}}}}}
	policy, err = f.dyn.Resource(agent.PolicyResource).Create(t.Context(), policy, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.deletePolicy(t, "rbac")
	mine, err := f.agentDyn.Resource(agent.PolicyResource).Get(t.Context(), "rbac", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the service account may not read a policy: %v", err)
	}
	mine.Object["spec"].(map[string]any)["description"] = "version: 1\n"
	_, err = f.agentDyn.Resource(agent.PolicyResource).Update(t.Context(), mine, metav1.UpdateOptions{})
	forbidden(t, "update a policy's spec", err)
	node, err := f.agentKube.CoreV1().Nodes().Get(t.Context(), "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the service account may not read a Node: %v", err)
	}
	node.Labels["role"] = "db"
	_, err = f.agentKube.CoreV1().Nodes().Update(t.Context(), node, metav1.UpdateOptions{})
	forbidden(t, "relabel a Node", err)
	_, err = f.agentKube.CoordinationV1().Leases("default").Create(t.Context(), &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "symroute-rbac-0"}}, metav1.CreateOptions{})
	forbidden(t, "take a Lease outside its namespace", err)
}

func forbidden(t *testing.T, what string, err error) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Errorf("the agents' service account may %s, or the refusal was not RBAC's: %v", what, err)
	}
}

// atRest measures each agent's resident memory and CPU over ten seconds with nothing to do, and meanwhile times
// symroute apply, with the same description and the site's own addresses, on a site of its own.
func (f *fleet) atRest(t *testing.T, single *site) {
	t.Helper()
	before := map[string]int64{}
	for _, n := range f.nodes {
		ticks, err := cpuTicks(n.agent.Pid())
		if err != nil {
			t.Fatal(err)
		}
		before[n.name] = ticks
	}
	start := time.Now()
	desc := single.describe("host.yaml", twoNICDescription("loose"))
	out := single.mustSymroute(0, "apply", "-c", desc)
	t.Logf("figure: symroute apply on one site: %v", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(out, "symroute verify: ok") {
		t.Errorf("symroute apply did not verify:\n%s", out)
	}
	single.expectClient(true, "after symroute apply")
	time.Sleep(time.Until(start.Add(10 * time.Second))) // the measuring period, not a wait for anything
	period := time.Since(start)
	for _, n := range f.nodes {
		ticks, err := cpuTicks(n.agent.Pid())
		if err != nil {
			t.Fatal(err)
		}
		rss, err := kubetest.ResidentBytes(n.agent.Pid())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("figure: %s's agent at rest: RSS %.1f MiB, %d CPU ticks (utime+stime, %d Hz) in %v",
			n.name, float64(rss)/(1<<20), ticks-before[n.name], clockTicks, period.Round(time.Millisecond))
	}
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on Linux.
const clockTicks = 100

// TestAgentNamesOnlyTheSilentGateway: when one gateway does not answer, the node's state names that gateway alone.
// The agent once ran its checks one after another under the try's one deadline: a silent gateway's check lasted
// until that deadline, every check after it failed at once with "context deadline exceeded", and the state said
// the API server did not answer, though the agent wrote that very state through it. The checks run side by side
// now; this test found the fault.
func TestAgentNamesOnlyTheSilentGateway(t *testing.T) {
	f := startFleet(t, map[string]string{"role": "edge"})
	f.nodes[0].GW.Exec("nft", "add table inet fleettest; add chain inet fleettest in { type filter hook input priority 0; }; add rule inet fleettest in ip daddr 10.0.0.254 icmp type echo-request drop")
	gen := f.setPolicy(t, "edge", spec(fleetDescription("loose"), edgeSelector, 1))
	f.waitStates(t, "n1 RolledBack", rolloutLimit, each("edge", gen, "RolledBack", "n1"))
	s, _ := f.state("n1")
	if !strings.Contains(s.Message, "eth-b's gateway 10.0.0.254 (from "+hostB+"): no echo reply") || strings.Contains(s.Message, "eth-a's gateway") {
		t.Errorf("n1's state does not name eth-b's gateway alone: %q", s.Message)
	}
	if strings.Contains(s.Message, "the API server") {
		t.Errorf("n1's state says the API server did not answer, though the agent wrote the state through it: %q", s.Message)
	}
}

// TestFleetHoldAnalysis: the replay of Lease events the fleet test judges maxUnavailable by tells renewals from
// takeovers, counts overlapping holds, and catches a change made outside its node's hold or during another's; so
// its checks can fail.
func TestFleetHoldAnalysis(t *testing.T) {
	at := func(ms int) time.Time {
		return time.Date(2026, 11, 24, 4, 0, 0, 0, time.UTC).Add(time.Duration(ms) * time.Millisecond)
	}
	events := []leaseEvent{
		{at: at(100), acquired: at(90), lease: "symroute-p-0", holder: "n1"},
		{at: at(400), lease: "symroute-p-0", holder: "n1"}, // a renewal
		{at: at(500), lease: "symroute-p-1", holder: "n2"},
		{at: at(700), lease: "symroute-p-0"},               // n1 releases
		{at: at(800), lease: "symroute-p-1", holder: "n3"}, // n3 takes n2's expired slot over
		{at: at(900), lease: "symroute-q-0", holder: "n1"}, // another policy's
	}
	holds := replayHolds(events, "p")
	if len(holds) != 3 {
		t.Fatalf("holds %+v, want n1's, n2's and n3's", holds)
	}
	if most := mostHeldAtOnce(holds); most != 2 {
		t.Errorf("at most %d held at once, want 2", most)
	}
	if most := mostHeldAtOnce(replayHolds(events[:2], "p")); most != 1 {
		t.Errorf("with n1 alone, %d held at once", most)
	}
	for _, c := range []struct {
		node          string
		ms            int
		held, another bool
	}{
		{"n1", 95, true, false}, // from the acquire time the agent wrote, before the event arrived
		{"n1", 600, true, true},
		{"n1", 750, false, true},
		{"n2", 450, false, true},
		{"n2", 790, true, false},
		{"n3", 850, true, false},
	} {
		if held, another := heldBy(holds, c.node, at(c.ms)), heldByAnother(holds, c.node, at(c.ms)); held != c.held || another != c.another {
			t.Errorf("%s at %d ms: held %v, another held %v; want %v, %v", c.node, c.ms, held, another, c.held, c.another)
		}
	}
}
