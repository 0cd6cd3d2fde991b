package integration

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/fileset"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/routing"
	"github.com/symroute/symroute/internal/edges/filesync"
	"github.com/symroute/symroute/internal/edges/kernel"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/internal/tools/golden"
	"github.com/symroute/symroute/internal/tools/nettest"
)

// TestNetworkdAcceptsGoldenFiles feeds every valid golden case's files to the real systemd-networkd in a
// namespace with links of the described names, and fails on any line where networkd rejects or ignores part of
// them, and on any rule or route in the kernel that differs from the plan.
func TestNetworkdAcceptsGoldenFiles(t *testing.T) {
	nettest.Require(t)
	cases, err := filepath.Glob("../../../golden/*/want")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no valid golden cases: %v", err)
	}
	for _, want := range cases {
		dir := filepath.Dir(want)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel() // each case has its own namespace, bus and networkd
			p := loadPlan(t, filepath.Join(dir, "input.yaml"))
			root := t.TempDir()
			copyTree(t, filepath.Join(dir, "root"), root)
			files := writeGenerated(t, p, root, filepath.Join(dir, "root"))

			id := nettest.RunID(t)
			ns := nettest.NewNetns(t, id, "host")
			makeLinks(t, ns, p)
			// A veth has no permanent MAC, so networkd cannot match an interface declared by one here; it must
			// still load the files without complaint, and every other link is checked in full.
			var checked []string
			for _, ifc := range p.Interfaces {
				if ifc.PermanentMAC == nil {
					checked = append(checked, ifc.Name)
				}
			}
			if len(p.ClusterRules) > 0 {
				checked = append(checked, "lo") // the cluster rules live on lo
			}
			bus := nettest.StartBus(t)
			nd := nettest.StartNetworkd(t, ns, bus, root)
			// networkd answers on the bus only once it has loaded the files.
			nd.WaitReady(t)
			// A dynamic link waits for a lease no server here gives: networkd has applied its file and made its
			// rules once it is configuring, and that is what is checked of it.
			var static []string
			for _, name := range checked {
				if i := slices.IndexFunc(p.Interfaces, func(i plan.Interface) bool { return i.Name == name }); i < 0 || !p.Interfaces[i].Dynamic() {
					static = append(static, name)
				}
			}
			if len(static) > 0 {
				nd.WaitConfigured(t, ns, 20*time.Second, static...)
			}
			for _, name := range checked {
				if !slices.Contains(static, name) {
					waitState(t, nd, ns, name, "configuring")
				}
			}
			if w := nd.ConfigWarnings(); len(w) > 0 {
				t.Fatalf("networkd complained about the generated files:\n%s", strings.Join(w, "\n"))
			}
			// symroute's reading of the files (networkfiles, emulating networkd's matching) chose the file
			// each link takes, and with it where to write: it must be the file networkd itself applies.
			chosen := generator.ExpectedNetworkFiles(files)
			for _, name := range checked {
				if _, file := nd.LinkState(t, ns, name); file != chosen[name] {
					t.Errorf("%s: networkd applies %q, symroute chose %q", name, file, chosen[name])
				}
			}
			if len(checked) == len(p.Interfaces)+min(len(p.ClusterRules), 1) {
				reader, err := kernel.NewReader(ns.Handle())
				if err != nil {
					t.Fatal(err)
				}
				assertKernelMatchesPlan(t, reader, p)
			}
		})
	}
}

// waitState waits for networkd to report the link in state.
func waitState(t *testing.T, nd *nettest.Networkd, ns *nettest.Netns, name, state string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, _ := nd.LinkState(t, ns, name)
		if got == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s after 20s, not %s", name, got, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func loadPlan(t *testing.T, input string) *plan.Plan {
	t.Helper()
	data, err := os.ReadFile(input)
	if err != nil {
		t.Fatal(err)
	}
	h, rep := description.Parse(data)
	if rep.HasErrors(false) {
		t.Fatalf("%s: %v", input, rep.Entries)
	}
	p, rep := plan.Build(h)
	if rep.HasErrors(false) {
		t.Fatalf("%s: %v", input, rep.Entries)
	}
	return p
}

// writeGenerated renders p against the case's system files and writes the result under root, as generate does.
func writeGenerated(t *testing.T, p *plan.Plan, root, systemRoot string) []fileset.File {
	t.Helper()
	files, rep, err := generator.Generate(p, generator.Options{Source: "input.yaml", Root: os.DirFS(systemRoot)})
	if err != nil || rep.HasErrors(false) {
		t.Fatalf("generate: %v %v", err, rep.Entries)
	}
	r, err := rootfs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	changes, err := filesync.Compute(r, files, ownership.IsOwned, ownership.IsOwnedLink, ownership.Globs)
	if err != nil {
		t.Fatal(err)
	}
	if err := filesync.Apply(r, changes); err != nil {
		t.Fatal(err)
	}
	return files
}

// makeLinks creates a veth pair per interface, the described end named as the interface, the peer up and left
// to nobody. A dotted name (bond0.100) is a veth too: what matters to networkd and sysctl is the name.
func makeLinks(t *testing.T, ns *nettest.Netns, p *plan.Plan) []string {
	t.Helper()
	var names []string
	for i, ifc := range p.Interfaces {
		peer := fmt.Sprintf("peer%d", i)
		ns.IP("link", "add", ifc.Name, "type", "veth", "peer", "name", peer)
		ns.IP("link", "set", peer, "up")
		names = append(names, ifc.Name)
	}
	return names
}

// assertKernelMatchesPlan compares the kernel's rules in symroute's priorities and the routes of every table
// symroute owns with the plan, both ways.
func assertKernelMatchesPlan(t *testing.T, r *kernel.Reader, p *plan.Plan) {
	t.Helper()
	rules, err := r.Rules()
	if err != nil {
		t.Fatal(err)
	}
	wantRules := map[string]bool{}
	ours := map[uint32]bool{p.ClusterPriority: len(p.ClusterRules) > 0}
	for _, pr := range p.ClusterRules {
		wantRules[ruleKey(pr.Priority, pr.From, pr.To, pr.Table)] = true
	}
	for _, ifc := range p.Interfaces {
		ours[ifc.Priority] = true
		for _, pr := range ifc.Rules {
			wantRules[ruleKey(pr.Priority, pr.From, pr.To, pr.Table)] = true
		}
	}
	gotRules := map[string]bool{}
	for _, kr := range rules {
		if ours[kr.Priority] {
			gotRules[ruleKey(kr.Priority, kr.From, kr.To, kr.Table)] = true
		}
	}
	compareSets(t, "rules", wantRules, gotRules)

	for _, ifc := range p.Interfaces {
		routes, err := r.Routes(ifc.Table)
		if err != nil {
			t.Fatal(err)
		}
		want, got := map[string]bool{}, map[string]bool{}
		for _, pr := range ifc.TableRoutes {
			want[routeKey(pr.Destination, pr.Gateway)] = true
		}
		for _, kr := range routes {
			got[routeKey(kr.Destination, kr.Gateway)] = true
		}
		compareSets(t, fmt.Sprintf("routes of table %d (%s)", ifc.Table, ifc.Name), want, got)

		if len(ifc.MainRoutes) > 0 {
			main, err := r.Routes(plan.MainTable)
			if err != nil {
				t.Fatal(err)
			}
			for _, pr := range ifc.MainRoutes {
				if !slices.ContainsFunc(main, func(kr routing.Route) bool { return !kr.Destination.IsValid() && kr.Gateway == pr.Gateway }) {
					t.Errorf("main has no default route via %s", pr.Gateway)
				}
			}
		}
	}
}

func ruleKey(prio uint32, from, to netip.Prefix, table uint32) string {
	return fmt.Sprintf("%d from %v to %v lookup %d", prio, from, to, table)
}

func routeKey(dst netip.Prefix, gw netip.Addr) string {
	d := "default"
	if dst.IsValid() {
		d = dst.String()
	}
	if gw.IsValid() {
		return d + " via " + gw.String()
	}
	return d
}

func compareSets(t *testing.T, what string, want, got map[string]bool) {
	t.Helper()
	for k := range want {
		if !got[k] {
			t.Errorf("%s: missing in the kernel: %s", what, k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("%s: in the kernel but not planned: %s", what, k)
		}
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	for p, data := range golden.ReadTreeOrFail(t, from) {
		dst := filepath.Join(to, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
