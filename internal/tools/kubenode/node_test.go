//go:build kubetest

package kubenode

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/symroute/symroute/internal/tools/kubetest"
	"github.com/symroute/symroute/internal/tools/nettest"
)

const (
	// Generous: the machine has two cores, and other tests may run beside this one.
	verifiedTimeout = 4 * time.Minute
	commandTimeout  = 8 * time.Minute
)

// TestDaemonSetOnARealNode: the shipped manifests and image, deployed by the README's operator commands as written,
// run the agent on a real kubelet and containerd whose node is the two-NIC site (its own networkd and bus). The
// DaemonSet's pod becomes Ready; a RoutingPolicy adapted from examples/kubernetes/routingpolicy.yaml to the site (the same
// object with the site's interfaces and gateways, and no nodeSelector, so it selects the node) is applied by the
// agent in the pod, the node's RoutingNodeState says Verified, and the packets agree: the LAN client, which could
// not reach the host's first-NIC address before, now can. Deleting the policy has the agent remove the node's
// configuration (its state says Removed, symroute's files and rules are gone, the client fails again). The README's
// removal commands, as written, then take the agent and everything it brought away.
func TestDaemonSetOnARealNode(t *testing.T) {
	nettest.Require(t)
	started := time.Now()
	repo := RepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	install, remove := operatorCommands(t, string(readme), "install"), operatorCommands(t, string(readme), "remove")
	hostPaths := daemonSetHostPaths(t, filepath.Join(repo, "packaging/kubernetes/daemonset.yaml"))

	cluster := kubetest.Start(t)
	// The node's own files give its links their addresses, as on a node the agent joins; the policy leaves the
	// addresses to the node.
	root, err := os.MkdirTemp("", "symroute-kubenode-root-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil { // networkd, as systemd-network, reads it
		t.Fatal(err)
	}
	writeTree(t, root, map[string]string{
		"etc/systemd/network/50-eth-a.network": "[Match]\nName=eth-a\n\n[Network]\nAddress=" + nettest.HostA + "/24\nGateway=192.168.1.1\n",
		"etc/systemd/network/50-eth-b.network": "[Match]\nName=eth-b\n\n[Network]\nAddress=" + nettest.HostB + "/24\n",
	})
	site := nettest.NewSite(t, nettest.RunID(t), root, false)
	site.Networkd.WaitConfigured(t, site.Host, time.Minute, "eth-a", "eth-b")
	if err := site.ClientReachesA(); err == nil {
		t.Fatal("the client reaches the host's first-NIC address before any policy: the site does not show the failure")
	}
	rulesBefore := site.Host.IP("rule")
	filesBefore := tree(t, root, "etc")

	node := Start(t, Options{Site: site, Cluster: cluster, Name: "node-" + nettest.RunID(t), NodeIP: nettest.HostA, HostPaths: hostPaths})
	t.Logf("cluster and node up %s after the test started", time.Since(started).Round(time.Second))

	deployed := time.Now()
	for _, c := range install {
		runOperatorCommand(t, node, repo, c)
	}
	pod := agentPod(t, node)
	ready := node.Kubectl("-n", "symroute", "get", "pod", pod, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.spec.nodeName}`)
	if ready != "True "+node.Name {
		t.Fatalf("the agent's pod %s: Ready and node %q, want True on %s", pod, ready, node.Name)
	}
	t.Logf("the agent's pod %s Ready %s after the README's install commands started", pod, time.Since(deployed).Round(time.Second))

	applied := time.Now()
	node.Kubectl("apply", "-f", writePolicy(t, repo, node.Dir))
	state := waitNodeState(t, node, "Verified")
	t.Logf("the node's state says Verified %s after the policy was applied: %s", time.Since(applied).Round(100*time.Millisecond), state)
	if err := site.ClientReachesA(); err != nil {
		t.Errorf("the node says Verified, but the client does not reach the host's first-NIC address: %v", err)
	}
	if rules := site.Host.IP("rule"); rules == rulesBefore {
		t.Errorf("the node says Verified, but its rules are as before:\n%s", rules)
	}
	// The state shows on the Node, beside the real kubelet's conditions, in an Event about the Node, and in the
	// agent's metrics on the node's port 9479, under verify's textfile names.
	if c := node.Kubectl("get", "node", node.Name, "-o", `jsonpath={.status.conditions[?(@.type=="SymrouteVerified")].status} {.status.conditions[?(@.type=="Ready")].status}`); c != "True True" {
		t.Errorf("the Node's SymrouteVerified and Ready conditions: %q, want True True", c)
	}
	if reasons := node.Kubectl("get", "events", "-n", "default", "--field-selector", "involvedObject.name="+node.Name, "-o", "jsonpath={.items[*].reason}"); !strings.Contains(reasons, "Verified") {
		t.Errorf("no Verified event about the Node: reasons %q", reasons)
	}
	// The agent verifies once the apply's netlink changes have settled (2 s): its verify metrics come then.
	var metrics string
	wanted := []string{"symroute_verify_success 1", `symroute_verify_interface_ok{interface="eth-a"} 1`, `symroute_agent_result{policy="site",result="Verified"} 1`}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		metrics, _ = site.Host.Try("bash", "-c", `exec 3<>/dev/tcp/`+nettest.HostA+`/9479 && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3`)
		if !slices.ContainsFunc(wanted, func(l string) bool { return !strings.Contains(metrics, l) }) {
			break
		}
	}
	for _, line := range wanted {
		if !strings.Contains(metrics, line) {
			t.Errorf("the agent's metrics on the node's address lack %q within 30 s:\n%s", line, metrics)
		}
	}
	if out, err := site.Host.Try("bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/9479`); err == nil {
		t.Errorf("the metrics are served on 127.0.0.1 too, not on the node's address alone: %s", out)
	}
	logUsage(t, node, pod)

	node.Kubectl("delete", "routingpolicy", "site")
	state = waitNodeState(t, node, "Removed")
	t.Logf("after the policy's deletion the node's state says Removed: %s", state)
	if c := node.Kubectl("get", "node", node.Name, "-o", `jsonpath={.status.conditions[?(@.type=="SymrouteVerified")].status}`); c != "" {
		t.Errorf("no policy selects the node, but it keeps its SymrouteVerified condition: %q", c)
	}
	if rules := site.Host.IP("rule"); rules != rulesBefore {
		t.Errorf("after removal the rules are not as before:\n%s\nbefore:\n%s", rules, rulesBefore)
	}
	// As symroute remove without --all: symroute's own .network files stay, stripped of the routing (they give the
	// links the addresses they had), and etc/symroute may keep what remove leaves there; every other file is as the
	// node had it.
	filesAfter := tree(t, root, "etc")
	for p := range mergeKeys(filesBefore, filesAfter) {
		switch data := filesAfter[p]; {
		case strings.HasPrefix(p, "systemd/network/10-symroute-") && filesBefore[p] == "":
			if strings.Contains(data, "RoutingPolicyRule") || strings.Contains(data, "Table=") {
				t.Errorf("after removal %s keeps routing:\n%s", p, data)
			}
		case strings.HasPrefix(p, "symroute/"):
		case filesBefore[p] != data:
			t.Errorf("after removal %s is not as before the agent:\n%s", p, data)
		}
	}
	if err := site.ClientReachesA(); err == nil {
		t.Error("after removal the client still reaches the host's first-NIC address through the gateway")
	}

	// The agent ran as the shipped ServiceAccount with the shipped RBAC: nothing it asked for was refused.
	logs := node.PodLogs()
	switch {
	case !strings.Contains(logs, "following the RoutingPolicies"):
		t.Errorf("no log of the agent's under the node's pod logs:\n%s", logs)
	case strings.Contains(logs, "forbidden"):
		t.Errorf("the API server refused the agent something; rbac.yaml lacks a permission:\n%s", logs)
	default:
		t.Logf("the agent's log:\n%s", logs)
	}

	for _, c := range remove {
		runOperatorCommand(t, node, repo, c)
	}
	if out, err := node.TryKubectl("get", "namespace", "symroute"); err == nil || !strings.Contains(out, "NotFound") {
		t.Errorf("after the README's removal commands the namespace symroute is still there: %s", out)
	}
	t.Logf("the test took %s", time.Since(started).Round(time.Second))
}

// operatorCommands are the lines of the README's sh block between <!-- operator-commands:<part> --> and its
// closing marker: the commands an operator runs, which the test runs as written.
func operatorCommands(t *testing.T, readme, part string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<!-- operator-commands:` + part + ` -->\s*` + "```sh\n(.*?)```" + `\s*<!-- /operator-commands:` + part + ` -->`).FindStringSubmatch(readme)
	if m == nil {
		t.Fatalf("README.md has no sh block between <!-- operator-commands:%s --> and <!-- /operator-commands:%s -->", part, part)
	}
	var out []string
	for _, l := range strings.Split(m[1], "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// runOperatorCommand runs one of the README's commands in the repository, as an operator's shell would, with
// kubectl (the cluster's version, on PATH) on the test's cluster and ctr on the node's containerd.
func runOperatorCommand(t *testing.T, node *Node, repo, command string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	started := time.Now()
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Dir, cmd.Env = repo, node.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's command %q: %v\n%s", command, err, out)
	}
	t.Logf("$ %s  (%s)\n%s", command, time.Since(started).Round(100*time.Millisecond), strings.TrimRight(string(out), "\n"))
}

// daemonSetHostPaths are the hostPath volumes of the shipped DaemonSet: the paths the node must provide.
func daemonSetHostPaths(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Spec struct {
			Template struct {
				Spec struct {
					Volumes []struct {
						HostPath *struct{ Path string } `yaml:"hostPath"`
					}
				}
			}
		}
	}
	if err := yaml.Unmarshal(data, &ds); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out []string
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.HostPath != nil {
			out = append(out, v.HostPath.Path)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s mounts no host path", file)
	}
	return out
}

// writePolicy writes examples/kubernetes/routingpolicy.yaml adapted to the site: named site, for every node, with the site's
// interfaces and gateways, addresses left to the node.
func writePolicy(t *testing.T, repo, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "examples/kubernetes/routingpolicy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var policy map[string]any
	if err := yaml.Unmarshal(data, &policy); err != nil {
		t.Fatal(err)
	}
	policy["metadata"].(map[string]any)["name"] = "site"
	spec := policy["spec"].(map[string]any)
	delete(spec, "nodeSelector")
	var desc []string
	for _, l := range strings.Split(nettest.Description("loose"), "\n") {
		if !strings.Contains(l, "addresses:") {
			desc = append(desc, l)
		}
	}
	spec["description"] = strings.Join(desc, "\n")
	out, err := json.Marshal(policy)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "site-policy.json")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// agentPod waits for the DaemonSet's one pod and returns its name.
func agentPod(t *testing.T, node *Node) string {
	t.Helper()
	out := node.Kubectl("-n", "symroute", "get", "pods", "-l", "app.kubernetes.io/name=symroute-agent", "-o", "jsonpath={.items[*].metadata.name}")
	pods := strings.Fields(out)
	if len(pods) != 1 {
		t.Fatalf("the DaemonSet has pods %q, want one", out)
	}
	return pods[0]
}

// waitNodeState waits until the node's RoutingNodeState says result, and returns its result and message.
func waitNodeState(t *testing.T, node *Node, result string) string {
	t.Helper()
	deadline := time.Now().Add(verifiedTimeout)
	for {
		out, err := node.TryKubectl("get", "routingnodestate", node.Name, "-o", "jsonpath={.status.result}: {.status.message}")
		if err == nil && strings.HasPrefix(out, result+":") {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node's RoutingNodeState did not say %s within %s: %s %v\nagent:\n%s", result, verifiedTimeout, out, err, node.PodLogs())
		}
		time.Sleep(time.Second)
	}
}

// logUsage logs the agent container's resident memory and CPU time, which the DaemonSet's requests are set from.
func logUsage(t *testing.T, node *Node, pod string) {
	t.Helper()
	id := strings.TrimPrefix(node.Kubectl("-n", "symroute", "get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].containerID}"), "containerd://")
	out, err := node.Ctr("tasks", "ls")
	if err != nil {
		t.Logf("ctr tasks ls: %v", err)
		return
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != id {
			continue
		}
		rss, err := kubetest.ResidentBytes(atoi(f[1]))
		stat, _ := os.ReadFile("/proc/" + f[1] + "/stat")
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		var cpu string
		if len(fields) > 13 {
			cpu = fmt.Sprintf("%d+%d ticks user+system", atoi(fields[11]), atoi(fields[12]))
		}
		t.Logf("the agent (pid %s): resident %d KiB (%v), CPU %s", f[1], rss/1024, err, cpu)
	}
}

func mergeKeys(a, b map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// tree reads every regular file under root/sub, by path relative to root/sub.
func tree(t *testing.T, root, sub string) map[string]string {
	t.Helper()
	out := map[string]string{}
	base := filepath.Join(root, sub)
	filepath.Walk(base, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(base, p)
			out[rel] = string(data)
		}
		return nil
	})
	return out
}
