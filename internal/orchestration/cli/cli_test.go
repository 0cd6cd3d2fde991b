package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/tools/golden"
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
	if tree := golden.ReadTreeOrFail(t, root); len(tree) != 0 {
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
	if tree := golden.ReadTreeOrFail(t, root); len(tree) != 0 {
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

// TestDescriptionMustBeARegularFile: a FIFO (which would block a read forever) and a device (which would never
// end) are refused at once with exit 2, as is a file past the size cap.
func TestDescriptionMustBeARegularFile(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "host.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	big := writeDescription(t, "version: 1\n#"+strings.Repeat("x", 2<<20)+"\n")
	for path, want := range map[string]string{
		fifo:        "a FIFO",
		"/dev/zero": "a character device",
		big:         "more than the 1048576",
	} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			code, _, stderr := run("check", "-c", path)
			if code != ExitInvalid || !strings.Contains(stderr, want) {
				t.Errorf("check -c %s: exit %d, want %d and %q:\n%s", path, code, ExitInvalid, want, stderr)
			}
		}()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatalf("check -c %s did not return", path)
		}
	}
}

// TestHeaderNamesTheDescriptionSafely: the header carries the description's base name, so the same description
// gives the same bytes from any path, and a path with a line break in it reaches no file.
func TestHeaderNamesTheDescriptionSafely(t *testing.T) {
	base := t.TempDir()
	trees := map[string]map[string][]byte{}
	for _, p := range []string{"web/host.yaml", "fleet/web//host.yaml", "evil\nDNS=1.1.1.1/host.yaml"} {
		full := filepath.Join(base, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(valid), 0o644); err != nil {
			t.Fatal(err)
		}
		root := t.TempDir()
		if code, stdout, stderr := run("generate", "-c", filepath.Join(base, p), "--root", root); code != ExitOK {
			t.Fatalf("generate -c %q: exit %d\n%s%s", p, code, stdout, stderr)
		}
		tree := golden.ReadTreeOrFail(t, root)
		trees[p] = tree
		for name, data := range tree {
			if strings.Contains(string(data), "DNS=") {
				t.Errorf("%s from -c %q carries the path's injected line:\n%s", name, p, data)
			}
		}
	}
	a, b := trees["web/host.yaml"], trees["fleet/web//host.yaml"]
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("different file sets: %d and %d", len(a), len(b))
	}
	for name, data := range a {
		if !bytes.Equal(data, b[name]) {
			t.Errorf("%s differs between web/host.yaml and fleet/web//host.yaml", name)
		}
	}
	if _, stdout, _ := run("generate", "-c", filepath.Join(base, "evil\nDNS=1.1.1.1/host.yaml"), "--format", "cloud-init"); strings.Contains(stdout, "\nDNS=") || strings.Contains(stdout, "\nbootcmd") {
		t.Errorf("cloud-init output carries the path:\n%s", stdout)
	}
}

// TestConcurrentGenerateDoesNotMix: generate runs on one root with different descriptions take the lock in turn,
// so the root ends with exactly one description's files, never a mix.
func TestConcurrentGenerateDoesNotMix(t *testing.T) {
	a := writeDescription(t, "version: 1\ninterfaces: [{name: eth-a, addresses: [10.0.0.1/24]}, {name: eth-b, addresses: [10.0.1.1/24]}]\n")
	b := writeDescription(t, "version: 1\ninterfaces: [{name: eth-c, addresses: [10.0.2.1/24]}]\n")
	var want [2]map[string][]byte
	for i, desc := range []string{a, b} {
		root := t.TempDir()
		if code, _, stderr := run("generate", "-c", desc, "--root", root); code != ExitOK {
			t.Fatal(stderr)
		}
		want[i] = golden.ReadTreeOrFail(t, root)
	}
	root := t.TempDir()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, _, stderr := run("generate", "-c", []string{a, b}[i%2], "--root", root); code != ExitOK {
				t.Error(stderr)
			}
		}()
	}
	wg.Wait()
	got := golden.ReadTreeOrFail(t, root)
	if !sameTree(got, want[0]) && !sameTree(got, want[1]) {
		t.Errorf("the root holds a mix of both descriptions' files: %v", keysOf(got))
	}
}

func sameTree(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestGenerateRemovesTemporariesOfAKilledRun: a run killed between writing a temporary file and renaming it
// leaves it behind; the next run removes it and says so.
func TestGenerateRemovesTemporariesOfAKilledRun(t *testing.T) {
	desc, root := writeDescription(t, valid), t.TempDir()
	left := filepath.Join(root, "etc/sysctl.d/.90-symroute.conf.tmp-1a2b3c")
	os.MkdirAll(filepath.Dir(left), 0o755)
	if err := os.WriteFile(left, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run("generate", "-c", desc, "--root", root)
	if code != ExitOK || !strings.Contains(stdout, "removed "+left) {
		t.Fatalf("exit %d:\n%s%s", code, stdout, stderr)
	}
	if _, err := os.Lstat(left); !os.IsNotExist(err) {
		t.Errorf("the temporary file is still there: %v", err)
	}
}

// TestDiscoverReadsTheRootSafely: a FIFO, a link to /dev/zero and a link out of the root among the .network
// files neither hang discover, nor fill memory, nor get read.
func TestDiscoverReadsTheRootSafely(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	dir := filepath.Join(root, "etc/systemd/network")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(outside, "x.network"), []byte("[Match]\nName=*\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "50-fifo.network"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Symlink("/dev/zero", filepath.Join(dir, "50-zero.network"))
	os.Symlink(filepath.Join(outside, "x.network"), filepath.Join(dir, "50-out.network"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		code, stdout, stderr := run("discover", "--root", root)
		if code != ExitOK || strings.Contains(stdout, "50-out.network") {
			t.Errorf("discover: exit %d\n%s%s", code, stdout, stderr)
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("discover did not return")
	}
}
