package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/golden"
)

func run(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := Main(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func writeDescription(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "host.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const valid = "version: 1\ninterfaces: [{name: eth0, addresses: [10.0.0.1/24], gateway: 10.0.0.254}]\n"

// withWarning is valid but warns: a Kubernetes CNI without cluster_cidrs.
const withWarning = "version: 1\ncni: [calico]\ninterfaces: [{name: eth0, addresses: [10.0.0.1/24]}]\n"

func TestExitStatuses(t *testing.T) {
	good, warn := writeDescription(t, valid), writeDescription(t, withWarning)
	bad := writeDescription(t, "version: 1\ninterfaces: [{name: eth0, addresses: [10.0.0.1]}]\n")
	for _, c := range []struct {
		args []string
		code int
		out  string // expected in stdout+stderr
	}{
		{[]string{"check", "-c", good}, ExitOK, "table 1000000"},
		{[]string{"check", "-c", warn}, ExitOK, "warning: cni[0]"},
		{[]string{"check", "-c", warn, "--strict"}, ExitInvalid, "error: cni[0]"},
		{[]string{"check", "-c", bad}, ExitInvalid, ":2:39: error: interfaces[0].addresses[0]"},
		{[]string{"check", "-c", filepath.Join(t.TempDir(), "missing.yaml")}, ExitInvalid, "cannot read the host description"},
		{[]string{"check", "--bogus"}, ExitInvalid, "unknown flag: --bogus"},
		{[]string{"check", "extra"}, ExitInvalid, `unexpected argument "extra"`},
		{[]string{"frobnicate"}, ExitInvalid, `unknown command "frobnicate"`},
		{[]string{}, ExitInvalid, "Usage:"},
		{[]string{"schema", "x"}, ExitInvalid, "takes no arguments"},
		{[]string{"--version"}, ExitOK, "symroute dev"},
		{[]string{"generate", "--help"}, ExitOK, "--diff"},
		{[]string{"reservations"}, ExitOK, "calico: tables 1-250"},
		{[]string{"generate", "-c", good, "--format", "nixos"}, ExitInvalid, "--format takes files, butane, ignition, cloud-init"},
		{[]string{"generate", "-c", good, "--format", "butane", "--diff"}, ExitInvalid, "does not go with --format butane"},
		{[]string{"generate", "-c", good, "--format", "butane"}, ExitOK, "variant: flatcar"},
		{[]string{"generate", "-c", good, "--format", "cloud-init"}, ExitOK, "#cloud-config"},
	} {
		code, stdout, stderr := run(c.args...)
		if code != c.code || !strings.Contains(stdout+stderr, c.out) {
			t.Errorf("symroute %s: exit %d, want %d; want %q in:\n%s%s", strings.Join(c.args, " "), code, c.code, c.out, stdout, stderr)
		}
	}
}

func TestSchemaIsJSON(t *testing.T) {
	code, stdout, _ := run("schema")
	var v map[string]any
	if code != ExitOK || json.Unmarshal([]byte(stdout), &v) != nil || v["title"] == nil {
		t.Fatalf("schema: exit %d:\n%s", code, stdout)
	}
}

func TestGenerateDiffWritesNothing(t *testing.T) {
	desc, root := writeDescription(t, valid), t.TempDir()
	code, stdout, stderr := run("generate", "-c", desc, "--root", root, "--diff")
	if code != ExitOK || !strings.Contains(stdout, "+++ "+filepath.Join(root, "etc/systemd/network/10-symroute-eth0.network")) || !strings.Contains(stdout, "+From=10.0.0.1/32") {
		t.Fatalf("diff: exit %d\n%s%s", code, stdout, stderr)
	}
	if tree, _ := golden.ReadTree(root); len(tree) != 0 {
		t.Errorf("--diff wrote %d files", len(tree))
	}
	if code, _, _ := run("generate", "-c", desc, "--root", root); code != ExitOK {
		t.Fatal("generate failed")
	}
	if code, stdout, _ := run("generate", "-c", desc, "--root", root, "--diff"); code != ExitOK || stdout != "" {
		t.Errorf("diff after generate: exit %d:\n%s", code, stdout)
	}
}

func TestGenerateStrictWritesNothing(t *testing.T) {
	desc, root := writeDescription(t, withWarning), t.TempDir()
	code, _, stderr := run("generate", "-c", desc, "--root", root, "--strict")
	if code != ExitInvalid || !strings.Contains(stderr, "nothing was written") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if tree, _ := golden.ReadTree(root); len(tree) != 0 {
		t.Errorf("wrote %d files", len(tree))
	}
}

func TestGenerateRefusesSymlinkWithSystemError(t *testing.T) {
	desc, root := writeDescription(t, valid), t.TempDir()
	dir := filepath.Join(root, "etc/sysctl.d")
	os.MkdirAll(dir, 0o755)
	if err := os.Symlink("/etc/hostname", filepath.Join(dir, "90-symroute.conf")); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run("generate", "-c", desc, "--root", root)
	if code != ExitSystem || !strings.Contains(stderr, "is a symbolic link") || stdout != "" {
		t.Fatalf("exit %d:\n%s%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/network")); err == nil {
		t.Error("other files were written despite the refusal")
	}
}
