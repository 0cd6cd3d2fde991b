package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/orchestration/apply"
	"github.com/symroute/symroute/internal/tools/golden"
)

func run(args ...string) (int, string, string) { return runWithInput("", args...) }

func runWithInput(stdin string, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &stdout, &stderr)
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
	good, warn, empty := writeDescription(t, valid), writeDescription(t, withWarning), t.TempDir()
	bad := writeDescription(t, "version: 1\ninterfaces: [{name: eth0, addresses: [10.0.0.1]}]\n")
	for _, c := range []struct {
		args []string
		code int
		out  string // expected in stdout+stderr
	}{
		{[]string{"check", "-c", good, "--root", empty}, ExitOK, "table 1000000"},
		{[]string{"check", "-c", warn, "--root", empty}, ExitOK, "warning: cni[0]"},
		{[]string{"check", "-c", warn, "--strict", "--root", empty}, ExitInvalid, "error: cni[0]"},
		{[]string{"check", "-c", bad, "--root", empty}, ExitInvalid, ":2:39: error: interfaces[0].addresses[0]"},
		{[]string{"check", "-c", filepath.Join(t.TempDir(), "missing.yaml")}, ExitInvalid, "cannot read the host description"},
		{[]string{"check", "--bogus"}, ExitInvalid, "unknown flag: --bogus"},
		{[]string{"check", "a.yaml", "b.yaml"}, ExitInvalid, `unexpected argument "b.yaml"`},
		{[]string{"frobnicate"}, ExitInvalid, `unknown command "frobnicate"`},
		{[]string{}, ExitInvalid, "Usage:"},
		{[]string{"schema", "x"}, ExitInvalid, `unexpected argument "x"`},
		{[]string{"--version"}, ExitOK, "symroute dev"},
		{[]string{"generate", "--help"}, ExitOK, "--diff"},
		{[]string{"reservations"}, ExitOK, "calico: tables 1-250"},
		{[]string{"generate", "-c", good, "--format", "nixos"}, ExitInvalid, `--format takes files, butane, ignition or cloud-init, not "nixos"`},
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

// TestHelp: help goes to stdout with exit 0, the same through help COMMAND, --help and -h, and carries the
// command's usage, options and examples; a mistake gets a short message and where to read more, on stderr, exit 2.
func TestHelp(t *testing.T) {
	for _, cmd := range visible() {
		code, want, stderr := run("help", cmd.name)
		if code != ExitOK || stderr != "" || !strings.Contains(want, "Usage:\n  symroute "+cmd.name) || !strings.Contains(want, "Options:\n") {
			t.Errorf("help %s: exit %d:\n%s%s", cmd.name, code, want, stderr)
		}
		if len(cmd.examples) > 0 && !strings.Contains(want, "Examples:\n  # "+cmd.examples[0].what+"\n  "+cmd.examples[0].command+"\n") {
			t.Errorf("help %s lacks its first example:\n%s", cmd.name, want)
		}
		for _, flag := range []string{"--help", "-h"} {
			if code, got, stderr := run(cmd.name, flag); code != ExitOK || got != want || stderr != "" {
				t.Errorf("%s %s: exit %d, differs from help %s:\n%s%s", cmd.name, flag, code, cmd.name, got, stderr)
			}
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		if code, stdout, stderr := run(args...); code != ExitOK || stderr != "" || !strings.Contains(stdout, "  reservations  list the tables") {
			t.Errorf("%v: exit %d:\n%s%s", args, code, stdout, stderr)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "--bogus"}, "symroute check: unknown flag: --bogus\nSee 'symroute help check'.\n"},
		{[]string{"verify", "-o", "xml"}, "symroute verify: -o takes text or json, not \"xml\"\nSee 'symroute help verify'.\n"},
		{[]string{"discover", "-o", "host.yaml"}, "symroute discover: -o takes yaml, not \"host.yaml\"\nSee 'symroute help discover'.\n"},
		{[]string{"chekc"}, "symroute: unknown command \"chekc\"; did you mean check?\nSee 'symroute help' for the commands.\n"},
		{[]string{"help", "frobnicate"}, "symroute help: no command \"frobnicate\"; the commands are check, generate, apply, try, confirm, remove, recover, verify, status, explain, discover, schema, reservations, help, version\nSee 'symroute help help'.\n"},
		{[]string{"--root", "/"}, "symroute: unknown option \"--root\"; options come after the command\nSee 'symroute help' for the commands.\n"},
	} {
		code, stdout, stderr := run(c.args...)
		if code != ExitInvalid || stdout != "" || stderr != c.want {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s\nwant:\n%s", c.args, code, stdout, stderr, c.want)
		}
	}
}

// TestDescriptionArgument: FILE, -c FILE and - (standard input) name the same description; naming two is a
// usage error, and standard input is capped like a file.
func TestDescriptionArgument(t *testing.T) {
	good, root := writeDescription(t, valid), t.TempDir()
	_, want, _ := runWithInput("", "check", "-c", good, "--root", root)
	if !strings.Contains(want, "table 1000000") {
		t.Fatalf("check -c: %s", want)
	}
	for _, c := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"check", good, "--root", root}},
		{"", []string{"check", "--root", root, good}},
		{"", []string{"check", "-c", good, good, "--root", root}},
		{valid, []string{"check", "-", "--root", root}},
		{valid, []string{"check", "-c", "-", "--root", root}},
	} {
		// The plan alike; the result line names the description as given.
		if code, stdout, stderr := runWithInput(c.stdin, c.args...); code != ExitOK || withoutResult(stdout) != withoutResult(want) {
			t.Errorf("%v: exit %d:\n%s%s", c.args, code, stdout, stderr)
		}
	}
	other := writeDescription(t, valid)
	code, stdout, stderr := run("check", "-c", good, other)
	if code != ExitInvalid || stdout != "" || !strings.Contains(stderr, "the description is named twice") || !strings.Contains(stderr, "See 'symroute help check'") {
		t.Errorf("two descriptions: exit %d:\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = runWithInput("version: 1\ninterfaces: [{name: eth0, addresses: [10.0.0.1]}]\n", "check", "-", "--root", root)
	if code != ExitInvalid || !strings.HasPrefix(stderr, "<stdin>:2:39: error: interfaces[0].addresses[0]") {
		t.Errorf("an invalid description on stdin: exit %d:\n%s", code, stderr)
	}
	huge := "version: 1\n#" + strings.Repeat("x", 1<<20) + "\n"
	code, _, stderr = runWithInput(huge, "generate", "-", "--root", root)
	if code != ExitInvalid || !strings.Contains(stderr, "standard input: too large: more than the 1048576 bytes") || !strings.Contains(stderr, "check what is piped in") {
		t.Errorf("more than 1 MiB on stdin: exit %d:\n%s", code, stderr)
	}
	if tree, err := golden.ReadTree(root); err != nil || len(tree) != 0 {
		t.Errorf("wrote %d files (%v)", len(tree), err)
	}
}

// TestQuiet: with -q a command prints its errors and its final result line, nothing of its progress and no
// warning (the result line counts them); --strict makes the warnings errors again, and they are printed.
func TestQuiet(t *testing.T) {
	good, warn, root := writeDescription(t, valid), writeDescription(t, withWarning), t.TempDir()
	bad := writeDescription(t, "version: 1\ncni: [calico]\ninterfaces: [{name: eth0, addresses: [10.0.0.1]}]\n")
	for _, c := range []struct {
		args           []string
		code           int
		stdout, stderr string // stdout exactly; stderr as a pattern
	}{
		{[]string{"check", "-q", good, "--root", root}, ExitOK, "symroute check: " + good + " is valid: 1 interface(s), 0 warning(s)\n", "^$"},
		{[]string{"check", "--quiet", warn, "--root", root}, ExitOK, "symroute check: " + warn + " is valid: 1 interface(s), 1 warning(s)\n", "^$"},
		{[]string{"check", "-q", "--strict", warn, "--root", root}, ExitInvalid, "", `^\S+:2:7: error: cni\[0\]: .*\n  2 \| cni: \[calico\]\n    \|       \^\nsymroute: \S+: 1 error\(s\), 0 warning\(s\); nothing was written or changed\n$`},
		{[]string{"check", "-q", bad, "--root", root}, ExitInvalid, "", `^\S+:3:39: error: interfaces\[0\].addresses\[0\]: .*\n  3 \| .*\n    \| {39}\^\nsymroute: \S+: 1 error\(s\), 1 warning\(s\); nothing was written or changed\n$`},
		{[]string{"generate", "-q", good, "--root", root}, ExitOK, "3 file(s) changed, 0 unchanged\n", "^$"},
		{[]string{"generate", "-q", good, "--root", root}, ExitOK, "0 file(s) changed, 3 unchanged\n", "^$"},
		{[]string{"remove", "-q", "--offline", "--all", "--root", root}, ExitOK, "symroute remove: done\n", "^$"},
	} {
		code, stdout, stderr := run(c.args...)
		if code != c.code || stdout != c.stdout || !regexp.MustCompile(c.stderr).MatchString(stderr) {
			t.Errorf("%v: exit %d, want %d; stdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant: %s", c.args, code, c.code, stdout, c.stdout, stderr, c.stderr)
		}
	}
	// Without -q, the same commands say what they do.
	if _, stdout, _ := run("check", good, "--root", root); !strings.Contains(stdout, "table 1000000") {
		t.Errorf("check without -q:\n%s", stdout)
	}
	if _, stdout, _ := run("generate", good, "--root", root); !strings.Contains(stdout, "create "+root) {
		t.Errorf("generate without -q:\n%s", stdout)
	}
}

// withoutResult drops check's last line, the result, which names the description.
func withoutResult(checkOutput string) string {
	lines := strings.Split(strings.TrimSuffix(checkOutput, "\n"), "\n")
	return strings.Join(lines[:len(lines)-1], "\n")
}

// TestTextfileErrorNamesThePathOnce: a metrics file that cannot be written is named once, in the error.
func TestTextfileErrorNamesThePathOnce(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "taken.prom"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing", "symroute.prom"), filepath.Join(dir, "taken.prom")} {
		var stderr bytes.Buffer
		if writeMetrics(path, nil, &stderr) {
			t.Fatalf("%s: written", path)
		}
		msg := stderr.String()
		if !strings.HasPrefix(msg, "symroute verify: --textfile: cannot write the metrics: ") || strings.Count(msg, filepath.Dir(path)) != 1 {
			t.Errorf("%s:\n%s", path, msg)
		}
	}
}

// TestRolledBackSaysWhatIsBack: the words after a failed apply, try or remove name the command whose state is
// back, and say what was checked.
func TestRolledBackSaysWhatIsBack(t *testing.T) {
	for _, c := range []struct {
		cmd  string
		out  apply.Outcome
		want string
	}{
		{"apply", apply.Outcome{}, "nothing was changed"},
		{"apply", apply.Outcome{Kept: true}, "the new state is kept, as --no-rollback asks"},
		{"remove", apply.Outcome{RolledBack: true}, "rolled back: symroute's files and sysctl values are as they were before the remove"},
		{"try", apply.Outcome{RolledBack: true, PreviousChecked: true, PreviousBack: true}, "rolled back and checked: symroute's files, its sysctl values, every rule, and every route on its links and in its tables are as they were before the try"},
		{"apply", apply.Outcome{RolledBack: true, PreviousChecked: true, PreviousDiff: []string{"+ rule 5: from all lookup 7"}}, "rolled back: symroute's files and sysctl values are as they were before the apply, but the routing differs from before (another program may have changed it meanwhile):\n  + rule 5: from all lookup 7"},
	} {
		if got := rolledBack(c.cmd, c.out); got != c.want {
			t.Errorf("%s %+v:\n%s\nwant:\n%s", c.cmd, c.out, got, c.want)
		}
	}
}

// TestCheckSaysWhatGenerateWould: check, generate, apply, try and verify read the description through one
// pipeline with one default root, so on the same root check refuses what generate refuses, with the same words,
// and passes what generate writes.
func TestCheckSaysWhatGenerateWould(t *testing.T) {
	for _, cmd := range []*command{checkCommand, generateCommand, applyCommand, tryCommand, verifyCommand} {
		fs, _ := cmd.flagSet()
		if root := fs.Lookup("root"); root == nil || root.DefValue != "/" {
			t.Errorf("%s: --root does not default to /", cmd.name)
		}
	}
	root := t.TempDir()
	netplan := filepath.Join(root, "run/systemd/network/10-netplan-eth0.network")
	os.MkdirAll(filepath.Dir(netplan), 0o755)
	if err := os.WriteFile(netplan, []byte("[Match]\nName=eth0\n\n[Network]\nDHCP=yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		desc string
		code int
	}{
		{"version: 1\ninterfaces: [{name: eth1, mode: drop-in, addresses: [10.0.1.1/24]}]\n", ExitInvalid}, // no file to extend
		{"version: 1\ninterfaces: [{name: eth0, addresses: [10.0.0.1/24]}]\n", ExitInvalid},                // netplan's file sorts first
		{"version: 1\ninterfaces: [{name: eth0, mode: drop-in, addresses: [10.0.0.1/24]}]\n", ExitOK},
	} {
		desc := writeDescription(t, c.desc)
		checkCode, _, checkErr := run("check", desc, "--root", root)
		genCode, _, genErr := run("generate", desc, "--root", root, "--diff")
		if checkCode != c.code || checkErr != genErr || (c.code == ExitOK) != (genCode != ExitInvalid) {
			t.Errorf("%q: check exit %d, generate exit %d (want check %d, the same verdict):\ncheck:\n%s\ngenerate:\n%s", c.desc, checkCode, genCode, c.code, checkErr, genErr)
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
	if code != ExitFailed || !strings.Contains(stdout, "+++ "+filepath.Join(root, "etc/systemd/network/10-symroute-eth0.network")) || !strings.Contains(stdout, "+From=10.0.0.1/32") {
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

// TestShippedExamplesCheck: every description under examples/, which the package ships and the README points to,
// passes check offline, against an empty root.
func TestShippedExamplesCheck(t *testing.T) {
	examples, err := filepath.Glob("../../../examples/*.yaml")
	if err != nil || len(examples) < 2 {
		t.Fatalf("examples: %v %v", examples, err)
	}
	for _, ex := range examples {
		if code, _, stderr := run("check", ex, "--root", t.TempDir()); code != ExitOK {
			t.Errorf("check %s exited %d:\n%s", ex, code, stderr)
		}
	}
}
