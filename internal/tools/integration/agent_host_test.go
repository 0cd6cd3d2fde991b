package integration

import (
	"bytes"
	"encoding/json"
	"maps"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/orchestration/agent"
)

var (
	buildAgentHost sync.Once
	agentHostErr   error
)

// agentHostBinary builds internal/tools/agenthost, the node agent's Machine in a program of its own, beside the
// symroute binary: the Machine runs inside the site's host namespace as symroute does.
func agentHostBinary(t *testing.T) string {
	t.Helper()
	symrouteBinary(t)
	bin := filepath.Join(binDir, "agenthost")
	buildAgentHost.Do(func() {
		if out, err := exec.Command("go", "build", "-o", bin, "../agenthost").CombinedOutput(); err != nil {
			agentHostErr = &buildError{err, string(out)}
		}
	})
	if agentHostErr != nil {
		t.Fatal(agentHostErr)
	}
	return bin
}

// agentHost runs agenthost with args in the host namespace and decodes the JSON it prints after label.
func (s *site) agentHost(label string, into any, args ...string) {
	s.t.Helper()
	code, out := s.Run(agentHostBinary(s.t), append([]string{"--root", s.Root}, args...)...)
	_, line, ok := strings.Cut(out, label+": ")
	if code != 0 || !ok {
		s.t.Fatalf("agenthost %v exited %d:\n%s", args, code, out)
	}
	line, _, _ = strings.Cut(line, "\n")
	if err := json.Unmarshal([]byte(line), into); err != nil {
		s.t.Fatalf("agenthost's %s %q: %v", label, line, err)
	}
	s.t.Logf("agenthost %v:\n%s", args, out)
}

// agentApply runs the Machine's Apply on desc in the host namespace and returns its outcome.
func (s *site) agentApply(desc string, args ...string) agent.Outcome {
	s.t.Helper()
	var o agent.Outcome
	s.agentHost("outcome", &o, append(args, "apply", desc)...)
	return o
}

// agentVerify runs the Machine's Verify on desc in the host namespace and returns its result.
func (s *site) agentVerify(desc string) drift.Result {
	s.t.Helper()
	var res drift.Result
	s.agentHost("result", &res, "verify", desc)
	return res
}

func hasFinding(res drift.Result, kind drift.Kind, iface string) bool {
	for _, f := range res.Findings {
		if f.Kind == kind && f.Interface == iface {
			return true
		}
	}
	return false
}

// TestAgentHostTriesChecksAndRemoves: the node agent's Machine, with the real networkd, on the two-NIC site whose
// links networkd configures from files of the node's own, with a policy that leaves the addresses to the node.
// When the API server does not answer after the try verified, and again when eth-b's gateway drops echo
// requests, the try rolls back: the files and the rules are as before, the asymmetric path still broken, and the
// outcome names the failed check. When every check passes (both gateways answer an echo from the host's addresses
// through the new tables), the try is confirmed: the LAN client reaches the host's first-NIC address, the record
// holds nothing pending, and the CLI's verify agrees. Remove takes symroute's routing away again, over the
// client's established connection, keeping its own .network files stripped of routing as remove without --all
// does.
func TestAgentHostTriesChecksAndRemoves(t *testing.T) {
	t.Parallel()
	// A node's links are configured by files of its own (the operator's, the image's) that networkd runs, as on a
	// node the agent joins; symroute's drop-ins extend them, and a rollback leaves networkd on them alone.
	s := buildSite(t, "", false)
	s.writeFile("etc/systemd/network/50-eth-a.network", "[Match]\nName=eth-a\n\n[Network]\nAddress="+hostA+"/24\nGateway=192.168.1.1\n")
	s.writeFile("etc/systemd/network/50-eth-b.network", "[Match]\nName=eth-b\n\n[Network]\nAddress="+hostB+"/24\n")
	s.reloadNetworkd()
	s.Networkd.WaitConfigured(t, s.Host, 20*time.Second, "eth-a", "eth-b")
	s.expectClient(false, "before the agent")
	var policy []string
	for _, l := range strings.Split(twoNICDescription("loose"), "\n") {
		if !strings.Contains(l, "addresses:") {
			policy = append(policy, l)
		}
	}
	desc := s.describe("policy.yaml", strings.Join(policy, "\n"))
	files, rules := s.tree("etc"), s.Host.IP("rule")

	o := s.agentApply(desc, "--api-fails")
	if o.Verified || !strings.Contains(o.Message, "the API server: connection refused") || !strings.Contains(o.Message, "rolled back and checked") {
		t.Fatalf("with the API server unreachable: %+v", o)
	}
	if now := s.tree("etc"); !maps.EqualFunc(now, files, bytes.Equal) {
		t.Errorf("the rollback left files changed: %v, before %v", keys(now), keys(files))
	}
	if now := s.Host.IP("rule"); now != rules {
		t.Errorf("the rollback left the rules changed:\n%s\nbefore:\n%s", now, rules)
	}
	s.expectClient(false, "after the rolled-back try")

	// A gateway that does not answer: eth-b's drops echo requests.
	s.GW.Exec("nft", "add table inet agenttest; add chain inet agenttest in { type filter hook input priority 0; }; add rule inet agenttest in ip daddr 10.0.0.254 icmp type echo-request drop")
	o = s.agentApply(desc)
	if o.Verified || !strings.Contains(o.Message, "eth-b's gateway 10.0.0.254 (from "+hostB+"): no echo reply") || strings.Contains(o.Message, "eth-a's gateway") || !strings.Contains(o.Message, "rolled back and checked") {
		t.Fatalf("with eth-b's gateway silent: %+v", o)
	}
	if now := s.tree("etc"); !maps.EqualFunc(now, files, bytes.Equal) {
		t.Errorf("the rollback left files changed: %v, before %v", keys(now), keys(files))
	}
	// A policy that skips eth-b's gateway confirms over it; the API server is still asked.
	if o := s.agentApply(desc, "--skip-gateway", "eth-b"); !o.Verified || !strings.Contains(o.Message, "confirmed") {
		t.Fatalf("with eth-b's silent gateway skipped: %+v", o)
	}
	s.expectClient(true, "after the try that skipped eth-b's gateway")
	s.GW.Exec("nft", "delete table inet agenttest")

	o = s.agentApply(desc)
	if !o.Verified || len(o.Findings) != 0 || !strings.Contains(o.Message, "confirmed") {
		t.Fatalf("with every check passing: %+v", o)
	}
	s.expectClient(true, "after the confirmed try")
	// Confirmed, not pending, and what the CLI's verify (on the same description with the node's addresses
	// written out) finds holding.
	if rec := s.loadRecord(); rec.Pending != nil || rec.Applied == nil {
		t.Errorf("after the confirmed try: pending %+v, applied %+v", rec.Pending, rec.Applied)
	}
	s.mustSymroute(0, "verify", "-c", s.describe("host.yaml", twoNICDescription("loose")))
	// The agent's own verify agrees, and finds a rule someone deleted; networkd restarted puts it back.
	if res := s.agentVerify(desc); !res.OK() || len(res.Interfaces) != 2 {
		t.Errorf("the agent's verify after the confirmed try: %+v", res)
	}
	s.Host.IP("rule", "del", "from", hostA)
	if res := s.agentVerify(desc); res.OK() || !hasFinding(res, drift.RuleMissing, "eth-a") {
		t.Errorf("the agent's verify with eth-a's rule deleted: %+v", res)
	}
	s.RestartNetworkd()
	s.Networkd.WaitConfigured(t, s.Host, 20*time.Second, "eth-a", "eth-b")
	if res := s.agentVerify(desc); !res.OK() {
		t.Errorf("the agent's verify with networkd's rules back: %+v", res)
	}

	code, out := s.Run(agentHostBinary(t), "--root", s.Root, "remove")
	if code != 0 || !strings.Contains(out, "kept eth-a's own .network file") {
		t.Fatalf("agenthost remove exited %d:\n%s", code, out)
	}
	// Without --all, symroute's own .network files stay, stripped of the routing: they give the links their
	// addresses. Every other file of symroute's is gone, and the node's own files are as they were.
	for p, data := range s.tree("etc") {
		switch {
		case strings.HasPrefix(p, "systemd/network/10-symroute-"):
			if strings.Contains(string(data), "RoutingPolicyRule") || strings.Contains(string(data), "Table=") {
				t.Errorf("remove kept %s with routing in it:\n%s", p, data)
			}
		case strings.HasPrefix(p, "symroute/"):
		case files[p] == nil || !bytes.Equal(files[p], data):
			t.Errorf("after remove, %s is not as before the agent:\n%s", p, data)
		}
	}
	if now := s.Host.IP("rule"); now != rules {
		t.Errorf("remove left rules:\n%s\nbefore:\n%s", now, rules)
	}
	s.expectClient(false, "after remove")
}
