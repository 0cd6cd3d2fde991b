package apply

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/routing"
	"github.com/symroute/symroute/internal/edges/sockets"
)

// dynamic is twoNIC with eth-b's address from DHCP.
const dynamic = `version: 1
interfaces:
  - name: eth-a
    addresses: [192.168.1.10/24]
    gateway: 192.168.1.1
    default_route: true
  - name: eth-b
    dhcp4: true
`

// lease has the DHCP server give eth-b addr, now and whenever networkd configures the link again.
func (h *host) lease(addr string) {
	h.t.Helper()
	f := h.os
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.links["eth-b"]
	a := netip.MustParsePrefix(addr)
	if f.leases == nil {
		f.leases = map[int]netip.Prefix{}
	}
	f.leases[i] = a
	f.routes = slices.DeleteFunc(f.routes, func(r routing.Route) bool { return r.LinkIndex == i && r.Table == 1000001 })
	f.addrs[i] = []netip.Prefix{a}
	f.routes = append(f.routes,
		routing.Route{Family: routing.FamilyV4, Destination: a.Masked(), Table: 1000001, LinkIndex: i},
		routing.Route{Family: routing.FamilyV4, Gateway: netip.MustParseAddr("10.2.0.1"), Table: 1000001, LinkIndex: i})
}

func (h *host) followerRules() []string {
	var out []string
	for _, r := range h.os.rules {
		if r.Protocol == ownership.FollowProtocol {
			out = append(out, ownership.RuleOf(r).String())
		}
	}
	return out
}

// TestFollowerRulesFollowTheLease: apply makes the follower's rule for the address the link has, verify finds a
// missing or stale one with the dhcp4 line, apply repairs it, and remove deletes it, never touching a rule with
// another protocol at the same place.
func TestFollowerRulesFollowTheLease(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	h.lease("10.2.0.50/24")
	ok(t)(h.apply(dynamic, Options{}))
	if got := h.followerRules(); len(got) != 1 || got[0] != "20020: from 10.2.0.50 lookup 1000001" {
		t.Fatalf("follower rules %v\n%s", got, h.os.Transcript())
	}
	if !strings.Contains(h.rules(), "29998: from all lookup 1000001 suppress_prefixlength 0") {
		t.Errorf("no lease rule: %s", h.rules())
	}
	if res := h.verify(dynamic); !res.OK() || res.Checked.Probes == 0 {
		t.Errorf("after apply: %+v", res)
	}

	// Someone else's rule at the follower's place stays, whatever happens.
	foreign := routing.Rule{Family: routing.FamilyV4, Priority: 20020, From: netip.MustParsePrefix("10.9.9.9/32"), Table: 1000001, Protocol: 4, Action: 1}
	h.os.rules = append(h.os.rules, foreign)

	// The lease moves: the old rule is stale, the new address has none.
	h.lease("10.2.0.77/24")
	res := h.verify(dynamic)
	kinds := map[drift.Kind]int{}
	for _, f := range res.Findings {
		kinds[f.Kind]++
		if f.Kind == drift.RuleMissing && f.Line != 8 {
			t.Errorf("missing follower rule reported at line %d, not dhcp4's 8: %+v", f.Line, f)
		}
	}
	if kinds[drift.RuleMissing] != 1 || kinds[drift.RuleStale] != 1 {
		t.Errorf("after the move: %+v", res.Findings)
	}
	ok(t)(h.apply(dynamic, Options{}))
	if got := h.followerRules(); len(got) != 1 || got[0] != "20020: from 10.2.0.77 lookup 1000001" {
		t.Errorf("after the move, follower rules %v", got)
	}

	if _, _, err := h.engine(Options{}).Remove(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if got := h.followerRules(); len(got) != 0 {
		t.Errorf("remove left %v", got)
	}
	if !strings.Contains(h.rules(), "20020: from 10.9.9.9 lookup 1000001") {
		t.Errorf("remove took another program's rule: %s", h.rules())
	}
}

// TestFollowerRulesRollBack: a run that makes eth-b dynamic and then fails verification deletes the follower's
// rules it added, with the rest of the run.
func TestFollowerRulesRollBack(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	ok(t)(h.apply(twoNIC, Options{}))
	h.lease("10.2.0.50/24")
	h.os.ignore = map[string]bool{"eth-a": true}
	out, err := h.apply(dynamic, Options{})
	if err != nil || out.Verified || !out.RolledBack {
		t.Fatalf("want a rolled back run: err %v, %+v", err, out)
	}
	if got := h.followerRules(); len(got) != 0 {
		t.Errorf("rollback left %v\n%s", got, h.os.Transcript())
	}
}

// TestDynamicInterfaceCarryingMainsDefaultIsRefused: the lease's routes would leave main, and the host with
// them; nothing is written.
func TestDynamicInterfaceCarryingMainsDefaultIsRefused(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	h.os.routes = append(h.os.routes, routing.Route{Family: routing.FamilyV4, Gateway: netip.MustParseAddr("10.2.0.1"), Table: 254, LinkIndex: h.os.links["eth-b"]})
	_, err := h.apply(`version: 1
interfaces:
  - name: eth-b
    dhcp4: true
`, Options{})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "main's only IPv4 default route leaves through eth-b") {
		t.Fatalf("err %v", err)
	}
	if len(h.files()) != 0 {
		t.Errorf("wrote %v", h.files())
	}
	// A blackhole or unreachable default route is no way out, whatever link it names.
	h.os.routes = append(h.os.routes, routing.Route{Family: routing.FamilyV4, Table: 254, LinkIndex: h.os.links["eth-a"], Blocked: true})
	if _, err := h.apply("version: 1\ninterfaces:\n  - name: eth-b\n    dhcp4: true\n", Options{}); !errors.Is(err, ErrRefused) {
		t.Errorf("with a blackhole default route besides: %v", err)
	}
	// With another way out in main, the change is safe.
	h.os.routes = append(h.os.routes, routing.Route{Family: routing.FamilyV4, Gateway: netip.MustParseAddr("192.168.1.1"), Table: 254, LinkIndex: h.os.links["eth-a"]})
	if _, err := h.apply(`version: 1
interfaces:
  - name: eth-b
    dhcp4: true
`, Options{}); errors.Is(err, ErrRefused) {
		t.Errorf("refused with another default route: %v", err)
	}
}

// TestRemovingALeaseIsGuarded: the lease's address is in no file, yet removing the file that takes the lease
// removes it: a connection on it makes remove --all refuse, and remove without --all keeps the file, released,
// still taking the lease, with its routes back in main.
func TestRemovingALeaseIsGuarded(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	h.lease("10.2.0.50/24")
	ok(t)(h.apply(dynamic, Options{}))
	h.os.conns = []sockets.Conn{{Local: netip.MustParseAddrPort("10.2.0.50:22"), Remote: netip.MustParseAddrPort("10.9.0.5:50000")}}
	if _, _, err := h.engine(Options{}).Remove(context.Background(), true); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "10.2.0.50") {
		t.Fatalf("remove --all with a connection on the lease: %v", err)
	}
	if _, _, err := h.engine(Options{}).Remove(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(h.dir, "etc/systemd/network/10-symroute-eth-b.network"))
	if err != nil {
		t.Fatalf("remove dropped the file that takes eth-b's lease: %v", err)
	}
	if s := string(data); !strings.Contains(s, "DHCP=ipv4") || strings.Contains(s, "RouteTable=") || strings.Contains(s, "RoutingPolicyRule") {
		t.Errorf("released file:\n%s", s)
	}
}

// TestRollbackWithoutARecordKeepsTheFollower: on files that generate or Ignition wrote (no record), the
// follower ran before the run; a run that rolls back leaves its rules as they were.
func TestRollbackWithoutARecordKeepsTheFollower(t *testing.T) {
	h := newHost(t, "eth-a", "eth-b")
	h.lease("10.2.0.50/24")
	ok(t)(h.apply(dynamic, Options{}))
	if err := os.RemoveAll(filepath.Join(h.dir, "var/lib/symroute")); err != nil {
		t.Fatal(err)
	}
	before := h.followerRules()
	h.os.ignore = map[string]bool{"eth-a": true}
	changed := strings.Replace(dynamic, "gateway: 192.168.1.1", "gateway: 192.168.1.2", 1)
	if out, err := h.apply(changed, Options{}); !out.RolledBack {
		t.Fatalf("want a rolled back run: err %v", err)
	}
	if after := h.followerRules(); len(before) != 1 || !slices.Equal(before, after) {
		t.Errorf("follower rules before %v, after the rollback %v\n%s", before, after, h.os.Transcript())
	}
}
