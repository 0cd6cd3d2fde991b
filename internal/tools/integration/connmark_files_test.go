package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/tools/nettest"
	"github.com/symroute/symroute/internal/tools/testenv"
)

// TestConnmarkFilesAreWhatTheToolsRead: for every valid golden case that tracks connections, systemd-analyze
// verifies the unit exactly as generated, and nft checks the table file (nft -c, in a throwaway namespace, so
// the host's ruleset is never touched): the boot's two pieces are proven on the real tools, not on symroute's
// reading of them.
func TestConnmarkFilesAreWhatTheToolsRead(t *testing.T) {
	nettest.Require(t)
	analyze := testenv.Program(t, "systemd-analyze", "systemd")
	testenv.Program(t, "nft", "nftables")
	units, err := filepath.Glob("../../../golden/*/want/" + ownership.ConnmarkUnitPath)
	if err != nil || len(units) == 0 {
		t.Fatalf("no golden case tracks connections: %v", err)
	}
	for _, unit := range units {
		want := strings.TrimSuffix(unit, ownership.ConnmarkUnitPath)
		t.Run(filepath.Base(filepath.Dir(filepath.Clean(want))), func(t *testing.T) {
			dir := t.TempDir()
			data, err := os.ReadFile(unit)
			if err != nil {
				t.Fatal(err)
			}
			copied := filepath.Join(dir, ownership.ConnmarkUnit)
			if err := os.WriteFile(copied, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(analyze, "verify", copied).CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
			ns := nettest.NewNetns(t, nettest.RunID(t), "nft")
			ruleset, err := filepath.Abs(filepath.Join(want, ownership.ConnmarkRulesetPath))
			if err != nil {
				t.Fatal(err)
			}
			if out, err := ns.Try("nft", "-c", "-f", ruleset); err != nil {
				t.Errorf("nft -c -f %s: %v\n%s", ruleset, err, out)
			}
		})
	}
}

// TestFollowerFilesAreWhatTheToolsRead: for every valid golden case with a dynamic interface, systemd-analyze
// verifies the follower's unit as generated, and bash parses its script.
func TestFollowerFilesAreWhatTheToolsRead(t *testing.T) {
	nettest.Require(t)
	analyze := testenv.Program(t, "systemd-analyze", "systemd")
	bash := testenv.Program(t, "bash", "bash")
	units, err := filepath.Glob("../../../golden/*/want/" + ownership.FollowUnitPath)
	if err != nil || len(units) == 0 {
		t.Fatalf("no golden case has a dynamic interface: %v", err)
	}
	for _, unit := range units {
		want := strings.TrimSuffix(unit, ownership.FollowUnitPath)
		t.Run(filepath.Base(filepath.Dir(filepath.Clean(want))), func(t *testing.T) {
			data, err := os.ReadFile(unit)
			if err != nil {
				t.Fatal(err)
			}
			copied := filepath.Join(t.TempDir(), ownership.FollowUnit)
			if err := os.WriteFile(copied, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(analyze, "verify", copied).CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
			script := filepath.Join(want, ownership.FollowScriptPath)
			if out, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
				t.Errorf("bash -n %s: %v\n%s", script, err, out)
			}
		})
	}
}
