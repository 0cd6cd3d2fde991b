package generator

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/tools/plantest"

	"github.com/symroute/symroute/internal/core/fileset"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/record"
)

const ownFile = ownership.HeaderPrefix + ` from host.yaml.
# Do not edit.

[Match]
Name=eth-a

[Network]
IPv6AcceptRA=no
Address=192.168.1.10/24

# eth-a carries the main table's default route.
[Route]
Gateway=192.168.1.1

# Replies from eth-a's addresses use table symroute-eth-a (1000000),
# which holds eth-a's subnets and gateway, so they leave by eth-a.
[Route]
Destination=192.168.1.0/24
Scope=link
Table=1000000

[RoutingPolicyRule]
From=192.168.1.10/32
Table=1000000
Priority=20010
`

func TestReadEffectsAndLost(t *testing.T) {
	e := ReadEffects([]byte(ownFile))
	want := Effects{
		Addresses: []netip.Prefix{netip.MustParsePrefix("192.168.1.10/24")},
		Rules:     []record.Rule{{Priority: 20010, From: netip.MustParsePrefix("192.168.1.10/32"), Table: 1000000}},
		Routes: []RouteEffect{
			{Gateway: netip.MustParseAddr("192.168.1.1"), Table: 254},
			{Destination: netip.MustParsePrefix("192.168.1.0/24"), Table: 1000000},
		},
	}
	if !sameEffects(e, want) {
		t.Fatalf("effects %+v", e)
	}
	moved := ReadEffects([]byte(strings.ReplaceAll(ownFile, "192.168.1.10", "192.168.1.11")))
	lost := Lost(e, moved)
	if len(lost.Addresses) != 1 || len(lost.Rules) != 1 || len(lost.Routes) != 0 {
		t.Errorf("lost %+v", lost)
	}
}

func sameEffects(a, b Effects) bool {
	return strings.Join(fmtAll(a), "|") == strings.Join(fmtAll(b), "|")
}

func fmtAll(e Effects) []string {
	var s []string
	for _, a := range e.Addresses {
		s = append(s, a.String())
	}
	for _, r := range e.Rules {
		s = append(s, r.String())
	}
	for _, r := range e.Routes {
		s = append(s, r.String())
	}
	return s
}

// TestReleased: remove keeps what gives the link its addresses and main's default route, drops the table and
// the rules, says so in the header, and stays a file the second wall accepts.
func TestReleased(t *testing.T) {
	out := Released([]byte(ownFile), "eth-a")
	e := ReadEffects(out)
	if len(e.Addresses) != 1 || len(e.Rules) != 0 || len(e.Routes) != 1 || e.Routes[0].Table != 254 {
		t.Fatalf("released effects %+v:\n%s", e, out)
	}
	if !strings.HasPrefix(string(out), ownership.HeaderPrefix) || !strings.Contains(string(out), "Released by \"symroute remove\"") || strings.Contains(string(out), "Replies from") {
		t.Errorf("released file:\n%s", out)
	}
	if err := checkFile(fileset.File{Path: ownership.OwnNetworkPath("eth-a"), Data: out}); err != nil {
		t.Error(err)
	}
}

// TestReadEffectsOfMarkRules reads back the rules of a tracked interface's file exactly as the plan lists them
// for the kernel: each mark rule once per family, with its mark, mask and input interface.
func TestReadEffectsOfMarkRules(t *testing.T) {
	p := plantest.Build(t, `version: 1
interfaces:
  - name: eth-b
    addresses: [10.0.0.1/24, fd00:b::1/64]
    gateway: 10.0.0.254
    gateway6: fd00:b::fe
    track_connections: true
  - name: eth-c
    addresses: [10.1.0.1/24]
    gateway: 10.1.0.254
    track_connections: true
`)
	files, rep, err := Generate(p, Options{Source: "host.yaml"})
	if err != nil || rep.HasErrors(false) {
		t.Fatal(err, rep.Entries)
	}
	for _, f := range files {
		if f.Interface == "" {
			continue
		}
		var want, got []string
		for _, r := range p.KernelRules() {
			if r.Interface == f.Interface {
				want = append(want, r.String())
			}
		}
		for _, r := range ReadEffects(f.Data).Rules {
			got = append(got, r.String())
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: read back %q, the plan has %q", f.Path, got, want)
		}
	}
}
