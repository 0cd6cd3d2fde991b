package ownership

import (
	"net/netip"
	"testing"

	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/core/routing"
)

// TestFiles: a file is symroute's by name and header together; a hand-written file under symroute's name, or
// symroute's header under another name (10-symroutex), is not.
func TestFiles(t *testing.T) {
	header := []byte(HeaderPrefix + " from host.yaml.\n")
	for _, c := range []struct {
		path string
		data []byte
		want bool
	}{
		{OwnNetworkPath("eth0"), header, true},
		{SysctlPath, header, true},
		{NetworkDir + "/50-eth0.network.d/" + DropInName, header, true},
		{OwnNetworkPath("eth0"), []byte("[Match]\nName=eth0\n"), false},
		{NetworkDir + "/10-symroutex.network", header, false},
		{NetworkDir + "/10-eth0.network", header, false},
	} {
		if got := IsOwned(c.path, c.data); got != c.want {
			t.Errorf("IsOwned(%s) = %v", c.path, got)
		}
	}
}

// TestLinkOf names the link each kind of symroute's networkd file configures, and no link for other paths.
func TestLinkOf(t *testing.T) {
	dropIn := []byte(HeaderPrefix + ".\n# /etc/systemd/network/50-eth1.network configures eth1;\n")
	for _, c := range []struct {
		path string
		data []byte
		want string
	}{
		{OwnNetworkPath("eth-a"), nil, "eth-a"},
		{ClusterPath, nil, "lo"},
		{NetworkDir + "/50-eth1.network.d/" + DropInName, dropIn, "eth1"},
		{NetworkDir + "/50-eth1.network.d/" + DropInName, []byte("no comment\n"), ""},
		{SysctlPath, dropIn, ""},
		{"etc/other/10-symroute-eth-a.network", nil, ""},
	} {
		got, ok := LinkOf(c.path, c.data)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("LinkOf(%s) = %q, %v; want %q", c.path, got, ok, c.want)
		}
	}
}

// TestOwnsRule: listed in the record and shaped as networkd makes it; the same numbers with another protocol, an
// input interface or another action are someone else's.
func TestOwnsRule(t *testing.T) {
	from := netip.MustParsePrefix("10.0.0.1/32")
	applied := &record.State{Rules: []record.Rule{{Priority: 20010, From: from, Table: 1000000}}}
	ours := routing.Rule{Family: 2, Priority: 20010, From: from, Table: 1000000, Protocol: StaticProtocol, Action: routing.ActionLookup}
	if !OwnsRule(applied, ours) {
		t.Fatal("symroute's own rule is not symroute's")
	}
	if OwnsRule(nil, ours) {
		t.Error("with no record, a rule is symroute's")
	}
	for name, r := range map[string]routing.Rule{
		"boot protocol":   func() routing.Rule { r := ours; r.Protocol = 3; return r }(),
		"input interface": func() routing.Rule { r := ours; r.Narrowed = true; return r }(),
		"blackhole":       func() routing.Rule { r := ours; r.Action = 6; return r }(),
		"another table":   func() routing.Rule { r := ours; r.Table = 77; return r }(),
	} {
		if OwnsRule(applied, r) {
			t.Errorf("%s: taken for symroute's", name)
		}
	}
}
