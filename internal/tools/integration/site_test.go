package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/tools/golden"
	"github.com/symroute/symroute/internal/tools/nettest"
)

// site is nettest's field topology with the assertions the scenarios share.
type site struct {
	*nettest.Site
	t   *testing.T
	bin string
	id  string
}

const (
	hostA    = nettest.HostA
	hostB    = nettest.HostB
	echoPort = nettest.EchoPort
)

// newSite builds the topology with the host configured by hand, as a host is before symroute, networkd running
// with no files, and an echo server on the host.
func newSite(t *testing.T) *site {
	t.Helper()
	return buildSite(t, "", true)
}

// buildSite builds the topology. With root set, networkd starts from the files already there, as after a
// reboot; with handConfigured, the host gets its addresses and default route by hand first.
func buildSite(t *testing.T, root string, handConfigured bool) *site {
	t.Helper()
	nettest.Require(t)
	if root == "" {
		root = t.TempDir()
		if err := os.Chmod(root, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	id := nettest.RunID(t)
	return &site{Site: nettest.NewSite(t, id, root, handConfigured), t: t, bin: symrouteBinary(t), id: id}
}

func (s *site) addPod() *nettest.Netns { return s.AddPod(s.id) }

func (s *site) restartNetworkd() { s.RestartNetworkd() }

// describe writes a description into the site's root and returns its path.
func (s *site) describe(name, body string) string {
	s.t.Helper()
	p := filepath.Join(s.Root, "etc/symroute", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		s.t.Fatal(err)
	}
	return p
}

// symroute runs the real binary inside the host namespace against the site's networkd and root.
func (s *site) symroute(args ...string) (int, string) {
	s.t.Helper()
	return s.Run(s.bin, append(args, "--root", s.Root)...)
}

// mustSymroute runs symroute and fails the test unless it exits with want.
func (s *site) mustSymroute(want int, args ...string) string {
	s.t.Helper()
	code, out := s.symroute(args...)
	if code != want {
		s.t.Fatalf("symroute %s exited %d, want %d:\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

// tree reads every file under dir, relative to the site's root.
func (s *site) tree(dir string) map[string][]byte {
	s.t.Helper()
	return golden.ReadTreeOrFail(s.t, filepath.Join(s.Root, dir))
}

// clientReachesA is the user-visible question: can the LAN client use the host's first-NIC address?
func (s *site) clientReachesA() error { return s.ClientReachesA() }

func (s *site) expectClient(works bool, when string) {
	s.t.Helper()
	err := s.clientReachesA()
	switch {
	case works && err != nil:
		s.t.Fatalf("%s: the client cannot reach %s through the gateway: %v", when, hostA, err)
	case !works && err == nil:
		s.t.Fatalf("%s: the client reached %s, but the asymmetric path should have broken the flow; the scenario proves nothing", when, hostA)
	}
}

func twoNICDescription(rpFilter string) string { return nettest.Description(rpFilter) }
