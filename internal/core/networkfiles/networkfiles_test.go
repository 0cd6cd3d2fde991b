package networkfiles

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	_ "github.com/symroute/symroute/internal/tools/golden"
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestFirstMatchOrderAndMasking(t *testing.T) {
	root := fstest.MapFS{
		// /etc masks the same name in /usr/lib; here the /etc copy matches nothing we ask about.
		"etc/systemd/network/50-lan.network":     {Data: []byte("[Match]\nName=lan9\n")},
		"usr/lib/systemd/network/50-lan.network": {Data: []byte("[Match]\nName=eth*\n")},
		// Sorted by name across directories: 20- in /usr/lib comes before 30- in /run.
		"usr/lib/systemd/network/20-a.network": {Data: []byte("[Match]\nName=eth1 eth2\n")},
		"run/systemd/network/30-b.network":     {Data: []byte("[Match]\nName=eth1\n")},
		// Without [Match] conditions networkd ignores a file.
		"etc/systemd/network/00-empty.network": {Data: []byte("[Network]\nDHCP=yes\n")},
		// Inverted list: everything but eth0 and wlan*.
		"usr/lib/systemd/network/90-rest.network": {Data: []byte("[Match]\nName=!eth0 wlan*\n")},
		// Not a .network file.
		"etc/systemd/network/10-x.netdev": {Data: []byte("[Match]\nName=eth0\n")},
	}
	files, err := Load(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, f := range files {
		order = append(order, f.Path)
	}
	if got, want := strings.Join(order, " "), "usr/lib/systemd/network/20-a.network run/systemd/network/30-b.network etc/systemd/network/50-lan.network usr/lib/systemd/network/90-rest.network"; got != want {
		t.Errorf("load order:\n%s\nwant:\n%s", got, want)
	}
	for name, want := range map[string]string{
		"eth1": "20-a.network", "eth2": "20-a.network", "eth3": "90-rest.network", "lan9": "50-lan.network",
		"eth0": "", "wlan0": "",
	} {
		f, ok := FirstMatch(files, Link{Name: name})
		if got := f.Name; !ok && want != "" || ok && got != want {
			t.Errorf("%s: got %q (found %v), want %q", name, got, ok, want)
		}
	}
}

func TestDevNullMasks(t *testing.T) {
	root := t.TempDir()
	for p, data := range map[string]string{"usr/lib/systemd/network/80-all.network": "[Match]\nName=*\n"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(data), 0o644)
	}
	os.MkdirAll(filepath.Join(root, "etc/systemd/network"), 0o755)
	if err := os.Symlink("/dev/null", filepath.Join(root, "etc/systemd/network/80-all.network")); err != nil {
		t.Fatal(err)
	}
	files, err := Load(os.DirFS(root), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 0 {
		t.Errorf("a /dev/null link in /etc must mask /usr/lib's file; loaded %+v", files)
	}
}

func TestSkip(t *testing.T) {
	root := fstest.MapFS{"etc/systemd/network/10-symroute-eth0.network": {Data: []byte("# ours\n[Match]\nName=eth0\n")}}
	files, _ := Load(root, func(p string, data []byte) bool { return strings.HasPrefix(string(data), "# ours") })
	if len(files) != 0 {
		t.Errorf("skipped file was loaded")
	}
}

// TestMACMatching: a file that matches by MAC decides only where the MAC is known (declared, or read from the
// running link); offline and undeclared it may match, and stands before the first file that certainly does.
func TestMACMatching(t *testing.T) {
	root := fstest.MapFS{
		"run/systemd/network/10-netplan-a.network": {Data: []byte("[Match]\nPermanentMACAddress=02:00:00:00:00:0A\n")},
		"run/systemd/network/20-not-b.network":     {Data: []byte("[Match]\nMACAddress=!02:00:00:00:00:0b\nName=eth*\n")},
		"run/systemd/network/30-eth.network":       {Data: []byte("[Match]\nName=eth*\n")},
	}
	files, err := Load(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		link      Link
		want      string
		uncertain string
	}{
		{"declared permanent MAC", Link{Name: "ens5", PermanentMAC: mac("02:00:00:00:00:0a")}, "10-netplan-a.network", ""},
		{"offline, nothing declared", Link{Name: "eth0"}, "30-eth.network", "/run/systemd/network/10-netplan-a.network (PermanentMACAddress=02:00:00:00:00:0A), /run/systemd/network/20-not-b.network (MACAddress=!02:00:00:00:00:0b)"},
		{"offline, another interface declares the MAC", Link{Name: "eth0", OthersPermanentMACs: []net.HardwareAddr{mac("02:00:00:00:00:0a")}}, "30-eth.network", "/run/systemd/network/20-not-b.network (MACAddress=!02:00:00:00:00:0b)"},
		{"live, the permanent MAC read", Link{Name: "eth0", Live: true, PermanentMAC: mac("02:00:00:00:00:0a"), MAC: mac("02:00:00:00:00:0b")}, "10-netplan-a.network", ""},
		{"live, another MAC", Link{Name: "eth0", Live: true, PermanentMAC: mac("02:00:00:00:00:0c"), MAC: mac("02:00:00:00:00:0c")}, "20-not-b.network", ""},
		{"live, no permanent MAC (veth)", Link{Name: "eth0", Live: true, MAC: mac("02:00:00:00:00:0b")}, "30-eth.network", ""},
	} {
		ch := Choose(files, c.link)
		if ch.File.Name != c.want || ch.Describe() != c.uncertain {
			t.Errorf("%s: got %q, uncertain %q; want %q, %q", c.name, ch.File.Name, ch.Describe(), c.want, c.uncertain)
		}
	}
	if !files[0].Specific(Link{Name: "ens5", PermanentMAC: mac("02:00:00:00:00:0a")}) {
		t.Error("a single permanent MAC is specific to that link")
	}
}

// TestDebianStockFiles: the files systemd 252 installs in /usr/lib/systemd/network on Debian 12 match no
// Ethernet link called eth0, offline or live; each fails on a condition symroute evaluates.
func TestDebianStockFiles(t *testing.T) {
	root := fstest.MapFS{}
	for name, match := range map[string]string{
		"80-6rd-tunnel.network":       "Name=6rd-*\nType=sit",
		"80-container-host0.network":  "Virtualization=container\nName=host0",
		"80-container-vb.network":     "Name=vb-*\nDriver=veth",
		"80-container-ve.network":     "Name=ve-*\nDriver=veth",
		"80-container-vz.network":     "Name=vz-*\nDriver=bridge",
		"80-vm-vt.network":            "Name=vt-*\nDriver=tun",
		"80-wifi-adhoc.network":       "Type=wlan\nWLANInterfaceType=ad-hoc",
		"80-ethernet.network.example": "Type=ether",
	} {
		root["usr/lib/systemd/network/"+name] = &fstest.MapFile{Data: []byte("[Match]\n" + match + "\n\n[Network]\nDHCP=yes\n")}
	}
	files, err := Load(root, nil)
	if err != nil || len(files) != 7 {
		t.Fatalf("loaded %d files: %v", len(files), err)
	}
	for _, l := range []Link{{Name: "eth0"}, {Name: "eth0", Live: true, Kind: "", MAC: mac("02:00:00:00:00:01")}} {
		for _, f := range files {
			if v, conds := f.Match(l); v != No {
				t.Errorf("%s matches %+v: %v %v", f.Name, l, v, conds)
			}
		}
	}
	// What does decide: a container's veth named ve-x may take 80-container-ve (its driver is not known
	// offline), and a wireless link 80-wifi-adhoc (its interface type is not known).
	for _, c := range []struct {
		link  Link
		file  string
		conds string
	}{
		{Link{Name: "ve-x"}, "80-container-ve.network", "Driver=veth"},
		{Link{Name: "wlan0", Type: "wlan"}, "80-wifi-adhoc.network", "the wireless conditions"},
	} {
		ch := Choose(files, c.link)
		if ch.Found || len(ch.Uncertain) != 1 || ch.Uncertain[0].File.Name != c.file || strings.Join(ch.Uncertain[0].Conditions, ",") != c.conds {
			t.Errorf("%s: %+v", c.link.Name, ch)
		}
	}
}

// TestKindAndOtherConditions: Kind= decides on a live link and is unknown offline; a condition symroute does not
// evaluate makes a file a maybe, never a yes.
func TestKindAndOtherConditions(t *testing.T) {
	files, err := Load(fstest.MapFS{
		"etc/systemd/network/10-vlan.network": {Data: []byte("[Match]\nName=eth0.*\nKind=vlan\n")},
		"etc/systemd/network/20-host.network": {Data: []byte("[Match]\nName=eth0.100\nHost=node1\n")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		link Link
		want []Verdict
	}{
		{Link{Name: "eth0.100"}, []Verdict{Maybe, Maybe}},
		{Link{Name: "eth0.100", Live: true, Kind: "vlan"}, []Verdict{Yes, Maybe}},
		{Link{Name: "eth0.100", Live: true, Kind: "veth"}, []Verdict{No, Maybe}},
		{Link{Name: "eth1", Live: true}, []Verdict{No, No}},
	} {
		for i, f := range files {
			if v, _ := f.Match(c.link); v != c.want[i] {
				t.Errorf("%s for %+v: %v, want %v", f.Name, c.link, v, c.want[i])
			}
		}
	}
}

func TestSpecific(t *testing.T) {
	for match, want := range map[string]bool{
		"Name=eth1":                     true,
		"Name=eth1 eth2":                false,
		"Name=eth*":                     false,
		"Name=!eth0":                    false,
		"Name=*\nType=ether":            false,
		"Name=eth1\nName=\nName=eth1":   true, // an empty assignment resets the list
		"Name=eth1 # a comment, really": false,
	} {
		files, err := Load(fstest.MapFS{"etc/systemd/network/a.network": {Data: []byte("[Match]\n" + match + "\n")}}, nil)
		if err != nil || len(files) != 1 {
			t.Fatalf("%q: %v %v", match, files, err)
		}
		if got := files[0].Specific(Link{Name: "eth1"}); got != want {
			t.Errorf("%q: specific=%v, want %v", match, got, want)
		}
	}
}

// TestParseMatchLikeSystemd: the reader follows systemd's config parser where it decides what a file matches.
func TestParseMatchLikeSystemd(t *testing.T) {
	for _, c := range []struct {
		name, data string
		loaded     bool
		names      string
	}{
		{"plain", "[Match]\nName=eth0\n", true, "eth0"},
		{"comments and indentation", "# x\n  ; y\n[Match]\n  Name = eth0 eth1 \n", true, "eth0 eth1"},
		{"continuation", "[Match]\nName=eth0 \\\neth1\n", true, "eth0 eth1"},
		{"comment inside a continuation", "[Match]\nName=eth0 \\\n# skipped\neth1\n", true, "eth0 eth1"},
		{"escaped backslash ends the line", "[Match]\nName=eth0\\\\\n[Network]\n", true, "eth0\\\\"},
		{"other sections ignored", "[Network]\nName=x\n[Match]\nName=eth2\n", true, "eth2"},
		{"no '=' ignored", "[Match]\nName\nName=eth3\n", true, "eth3"},
		{"broken section header", "[Match\nName=eth0\n", false, ""},
		{"line past 1 MiB", "[Match]\nName=" + strings.Repeat("x", 1<<20) + "\n", false, ""},
	} {
		m, loaded := parseMatch([]byte(c.data))
		if loaded != c.loaded || loaded && strings.Join(m.names.items, " ") != c.names {
			t.Errorf("%s: loaded %v names %q, want %v %q", c.name, loaded, m.names.items, c.loaded, c.names)
		}
	}
}

// TestParseMatchManyKeys: every one of many distinct keys is kept (gopkg.in/ini.v1, used before, searched its
// keys linearly for each new one: minutes for a 4 MiB file). BenchmarkParseMatch measures the cost.
func TestParseMatchManyKeys(t *testing.T) {
	var b strings.Builder
	b.WriteString("[Match]\nName=eth0\n")
	for i := range 400000 {
		fmt.Fprintf(&b, "K%d=z\n", i)
	}
	m, loaded := parseMatch([]byte(b.String()))
	if !loaded || len(m.other) != 400000 {
		t.Fatalf("loaded %v, %d other keys", loaded, len(m.other))
	}
}

func BenchmarkParseMatch(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		var sb strings.Builder
		sb.WriteString("[Match]\nName=eth0\n")
		for i := range n {
			fmt.Fprintf(&sb, "K%d=z\n", i)
		}
		data := []byte(sb.String())
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				parseMatch(data)
			}
		})
	}
}

// TestDropins: the drop-ins of a .network file come from its .d directory in every configuration directory,
// sorted by name across them, a name in /etc masking the same in /usr/lib, and only *.conf.
func TestDropins(t *testing.T) {
	root := fstest.MapFS{
		"run/systemd/network/10-netplan-eth1.network":                        {Data: []byte("[Match]\nName=eth1\n")},
		"etc/systemd/network/10-netplan-eth1.network.d/90-symroute.conf":     {Data: []byte("[Route]\n")},
		"usr/lib/systemd/network/10-netplan-eth1.network.d/50-mtu.conf":      {Data: []byte("[Link]\n")},
		"usr/lib/systemd/network/10-netplan-eth1.network.d/90-symroute.conf": {Data: []byte("masked by /etc's\n")},
		"etc/systemd/network/10-netplan-eth1.network.d/README":               {Data: []byte("not a drop-in\n")},
		"etc/systemd/network/10-other.network.d/50-x.conf":                   {Data: []byte("another file's\n")},
	}
	got, err := Dropins(root, "/run/systemd/network/10-netplan-eth1.network")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/usr/lib/systemd/network/10-netplan-eth1.network.d/50-mtu.conf", "/etc/systemd/network/10-netplan-eth1.network.d/90-symroute.conf"}
	if !slices.Equal(got, want) {
		t.Errorf("drop-ins %q, want %q", got, want)
	}
	if got, err := Dropins(root, "/etc/systemd/network/20-none.network"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("a file without drop-ins: %q, %v", got, err)
	}
}
