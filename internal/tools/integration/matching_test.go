package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/edges/networkd"
)

// TestMatchingReadsTheRunningHost: a netplan-style file that matches eth-a by MAC. Offline (a root for another
// machine) symroute cannot tell whether it is eth-a's and refuses; on the host, apply reads eth-a's MAC, knows the
// file takes eth-a and refuses own mode by name, and in drop-in mode adds its routing to that file. A file
// networkd has not read yet (no reload since it was written) makes symroute's reading differ from networkd's
// answer: refused, pointing to networkctl reload.
func TestMatchingReadsTheRunningHost(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	s.Host.IP("link", "set", "eth-a", "address", "02:00:00:00:0a:01")
	write, reload := s.writeFile, s.reloadNetworkd
	write("run/systemd/network/10-netplan-eth-a.network", "[Match]\nMACAddress=02:00:00:00:0a:01\n\n[Network]\nAddress="+hostA+"/24\nGateway=192.168.1.1\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n")
	reload()
	s.Networkd.WaitConfigured(t, s.Host, 20*time.Second, "eth-a")

	own := s.describe("host.yaml", twoNICDescription("loose"))
	out := s.mustSymroute(2, "check", own)
	if !strings.Contains(out, "10-netplan-eth-a.network (MACAddress=02:00:00:00:0a:01) may match eth-a") || !strings.Contains(out, "without the running link") {
		t.Errorf("check offline:\n%s", out)
	}
	out = s.mustSymroute(2, "apply", own)
	if !strings.Contains(out, "10-netplan-eth-a.network already matches eth-a (MACAddress=02:00:00:00:0a:01)") {
		t.Errorf("apply on the host, own mode:\n%s", out)
	}

	// A current MAC is shared by a link's VLANs and a bond's ports: a file matching it is no link's alone.
	dropIn := s.describe("host.yaml", strings.Replace(twoNICDescription("loose"), "  - name: eth-a\n", "  - name: eth-a\n    mode: drop-in\n", 1))
	out = s.mustSymroute(2, "apply", dropIn)
	if !strings.Contains(out, "10-netplan-eth-a.network configures eth-a but also matches other links (MACAddress=02:00:00:00:0a:01)") {
		t.Errorf("apply on the host, drop-in onto a file matching a current MAC:\n%s", out)
	}
}

// TestChoiceHeldToNetworkdsAnswer: a file networkd has not read yet (written after its last reload) makes
// symroute's reading of the files differ from the file networkd applies: apply refuses, changes nothing and points
// to networkctl reload; after the reload it goes ahead.
func TestChoiceHeldToNetworkdsAnswer(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	write, reload := s.writeFile, s.reloadNetworkd
	write("etc/systemd/network/50-eth-b.network", "[Match]\nName=eth-b\n\n[Network]\nAddress="+hostB+"/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n")
	reload()
	s.Networkd.WaitConfigured(t, s.Host, 20*time.Second, "eth-b")
	dropIn := s.describe("host.yaml", strings.Replace(twoNICDescription("loose"), "  - name: eth-b\n", "  - name: eth-b\n    mode: drop-in\n", 1))
	s.mustSymroute(0, "apply", dropIn)

	write("etc/systemd/network/05-admin-eth-b.network", "[Match]\nName=eth-b\n\n[Network]\nAddress="+hostB+"/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n")
	before := s.tree("etc")
	out := s.mustSymroute(2, "apply", dropIn)
	if !strings.Contains(out, `networkd applies "/etc/systemd/network/50-eth-b.network" to eth-b now, but symroute would add its drop-in to "/etc/systemd/network/05-admin-eth-b.network"`) || !strings.Contains(out, "networkctl reload") {
		t.Errorf("apply with a file networkd has not read:\n%s", out)
	}
	after := s.tree("etc")
	for p, data := range before {
		if string(after[p]) != string(data) {
			t.Errorf("the refused apply changed %s", p)
		}
	}
	reload()
	s.Networkd.WaitConfigured(t, s.Host, 20*time.Second, "eth-b")
	s.mustSymroute(0, "apply", dropIn)
	if _, err := os.Stat(filepath.Join(s.Root, "etc/systemd/network/05-admin-eth-b.network.d/90-symroute.conf")); err != nil {
		t.Errorf("after the reload the drop-in did not move to the file networkd applies: %v", err)
	}
}

// writeFile writes data at p under the site's root, as another program's file.
func (s *site) writeFile(p, data string) {
	s.t.Helper()
	full := filepath.Join(s.Root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// reloadNetworkd has the site's networkd read its files again, over its bus.
func (s *site) reloadNetworkd() {
	s.t.Helper()
	c, err := networkd.Dial(context.Background(), s.Bus.Address)
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close()
	if err := c.Reload(context.Background()); err != nil {
		s.t.Fatal(err)
	}
}
