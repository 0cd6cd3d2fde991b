package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStatusWithoutDescription: on a root without a description, status reads this namespace's links (read-only)
// and shows every one but lo, as text without an escape byte (standard output is no terminal here) and as JSON
// whose lists are lists.
func TestStatusWithoutDescription(t *testing.T) {
	root := t.TempDir()
	code, stdout, stderr := run("status", "--root", root, "-o", "json")
	if code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	var doc struct {
		Description *string `json:"description"`
		Verdict     string  `json:"verdict"`
		Interfaces  []struct {
			Name    string `json:"name"`
			Verdict string `json:"verdict"`
			Rules   []any  `json:"rules"`
		} `json:"interfaces"`
		Findings []any `json:"findings"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if doc.Verdict != "no description" || doc.Description == nil || *doc.Description != "" || doc.Findings == nil || doc.Interfaces == nil {
		t.Errorf("status -o json: %s", stdout)
	}
	for _, ifc := range doc.Interfaces {
		if ifc.Name == "lo" || ifc.Verdict != "no description" || ifc.Rules == nil {
			t.Errorf("interface %+v", ifc)
		}
	}
	code, stdout, _ = run("status", "--root", root)
	if code != ExitOK || !strings.HasPrefix(stdout, "symroute status: no description: every link") || strings.ContainsRune(stdout, 0x1b) {
		t.Errorf("status: exit %d:\n%q", code, stdout)
	}
	for _, line := range strings.Split(stdout, "\n") {
		if len([]rune(line)) > 100 {
			t.Errorf("line wider than 100 columns: %q", line)
		}
	}
}

// TestStatusRefusesBadInput: an unknown interface or format is a usage error, exit 2, that says what there is.
func TestStatusRefusesBadInput(t *testing.T) {
	root := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--root", root, "no-such-if0"}, `symroute status: no interface "no-such-if0"; the links are `},
		{[]string{"status", "--root", root, "-o", "xml"}, `symroute status: -o takes text, json or yaml, not "xml"`},
		{[]string{"status", "--root", root, "eth0", "eth1"}, `unexpected argument "eth1"`},
		{[]string{"status", "-c", root + "/missing.yaml"}, "cannot read the host description"},
	} {
		code, stdout, stderr := run(c.args...)
		if code != ExitInvalid || !strings.Contains(stderr, c.want) || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and %q", c.args, code, stdout, stderr, c.want)
		}
	}
}

// TestStatusVerdictFromTheDescription: with a description naming a link this namespace lacks, status shows it as
// missing with verify's finding as its verdict, and still exits 0: verify is the check.
func TestStatusVerdictFromTheDescription(t *testing.T) {
	desc := writeDescription(t, "version: 1\ninterfaces: [{name: symr-none0, addresses: [10.0.0.1/24], gateway: 10.0.0.254}]\n")
	code, stdout, stderr := run("status", "-c", desc, "--root", t.TempDir())
	if code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	for _, want := range []string{"symroute status: drift: " + desc, "symr-none0  missing\n", "  tables     1000000 symroute-symr-none0 (0 routes)\n",
		"  verdict    drift, 2 findings:\n             - rule 20010: from 10.0.0.1 lookup 1000000 is missing [rule_missing]\n",
		"             - link symr-none0 does not exist [link_missing]\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = run("status", "-c", desc, "--root", t.TempDir(), "-o", "yaml", "symr-none0")
	if code != ExitOK || !strings.Contains(stdout, "  - name: symr-none0\n") || !strings.Contains(stdout, "expected: link symr-none0\n") {
		t.Errorf("status -o yaml symr-none0: exit %d:\n%s", code, stdout)
	}
}

// TestColourOnATerminalWithoutNoColor: a terminal (a pseudo-terminal here) gets colour unless NO_COLOR is set,
// even empty; a pipe or a file never does.
func TestColourOnATerminalWithoutNoColor(t *testing.T) {
	pty := openPTY(t)
	t.Setenv("NO_COLOR", "") // Setenv restores NO_COLOR after the test; the test unsets it
	os.Unsetenv("NO_COLOR")
	if !colorFor(pty) {
		t.Error("no colour on a terminal")
	}
	t.Setenv("NO_COLOR", "")
	if colorFor(pty) {
		t.Error("colour with NO_COLOR set, though empty")
	}
	t.Setenv("NO_COLOR", "1")
	if colorFor(pty) {
		t.Error("colour with NO_COLOR=1")
	}
	os.Unsetenv("NO_COLOR")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.Create(t.TempDir() + "/out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if colorFor(w) || colorFor(f) || colorFor(&strings.Builder{}) {
		t.Error("colour on a pipe, a file or a buffer")
	}
}

// openPTY opens a pseudo-terminal and returns its terminal side.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	term, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { term.Close() })
	return term
}
