package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/tools/golden"
	"github.com/symroute/symroute/internal/tools/testenv"
)

// TestGoldenNetplanFilesAreNetplans: a golden root with netplan's .network files also holds the netplan
// configuration they come from (etc/netplan), and netplan generate makes exactly those files from it, so the
// cases meet netplan's real output rather than a guess at it. netplan writes only under a copy of the root.
func TestGoldenNetplanFilesAreNetplans(t *testing.T) {
	netplan := testenv.Program(t, "netplan", "netplan.io")
	roots, err := filepath.Glob("../../../golden/*/root")
	if err != nil || len(roots) == 0 {
		t.Fatalf("no golden roots: %v", err)
	}
	checked := 0
	for _, root := range roots {
		tree := golden.ReadTreeOrFail(t, root)
		want, config := map[string][]byte{}, map[string][]byte{}
		for p, data := range tree {
			if rel, ok := strings.CutPrefix(p, "run/systemd/network/"); ok && strings.HasPrefix(rel, "10-netplan-") {
				want[rel] = data
			}
			if strings.HasPrefix(p, "etc/netplan/") {
				config[p] = data
			}
		}
		if len(want) == 0 && len(config) == 0 {
			continue
		}
		checked++
		t.Run(filepath.Base(filepath.Dir(root)), func(t *testing.T) {
			if len(config) == 0 {
				t.Fatal("the root holds netplan's files but not the etc/netplan they come from")
			}
			dir := t.TempDir()
			for p, data := range config {
				dst := filepath.Join(dir, p)
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dst, data, 0o600); err != nil { // netplan warns about readable configurations
					t.Fatal(err)
				}
			}
			cmd := exec.Command(netplan, "generate", "--root-dir", dir)
			// Inside a snap (SNAP set, even empty) netplan asks a service over D-Bus instead; never here.
			cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SNAP=") })
			if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
				t.Fatalf("netplan generate: %v\n%s", err, out)
			}
			got := golden.ReadTreeOrFail(t, filepath.Join(dir, "run/systemd/network"))
			for name, data := range want {
				if !bytes.Equal(got[name], data) {
					t.Errorf("run/systemd/network/%s is not what netplan generates from etc/netplan:\n--- golden\n%s--- netplan\n%s", name, data, got[name])
				}
			}
			for name := range got {
				if _, ok := want[name]; !ok {
					t.Errorf("netplan also generates run/systemd/network/%s, which the root lacks", name)
				}
			}
		})
	}
	if checked == 0 {
		t.Fatal("no golden root holds netplan's files")
	}
}
