package generator_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/orchestration/cli"
	"github.com/symroute/symroute/internal/tools/golden"
)

// TestGolden runs `symroute check` and `symroute generate` on every golden/<case>/input.yaml as a user would,
// against a copy of golden/<case>/root (the system's files before symroute runs), and compares:
//   - check.txt: check's exit status, stdout and stderr (the plan's explanation, or the error report);
//   - want/: exactly the files generate adds under the root, byte for byte.
//
// A case whose check fails must make generate exit 2 and leave the root untouched.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("../golden/*/input.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden cases found: %v", err)
	}
	for _, input := range inputs {
		dir, _ := filepath.Abs(filepath.Dir(input))
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Chdir(dir)
			root := t.TempDir()
			copyTree(t, "root", root)
			before := golden.ReadTreeOrFail(t, root)

			code, stdout, stderr := run("check", "-c", "input.yaml", "--root", root)
			golden.File(t, "check.txt", []byte(fmt.Sprintf("exit status %d\n--- stdout\n%s--- stderr\n%s", code, stdout, stderr)))

			code, stdout, stderr = run("generate", "-c", "input.yaml", "--root", root)
			after := golden.ReadTreeOrFail(t, root)
			for p, data := range before {
				if !bytes.Equal(after[p], data) {
					t.Errorf("generate changed or removed %s, which is not symroute's", p)
				}
			}
			added := map[string][]byte{}
			for p, data := range after {
				if _, ok := before[p]; !ok {
					added[p] = data
				}
			}
			if strings.HasPrefix(string(mustRead(t, "check.txt")), "exit status 0\n") {
				if code != cli.ExitOK {
					t.Fatalf("generate exited %d:\n%s", code, stderr)
				}
				golden.Tree(t, "want", added)
				code, stdout, _ = run("generate", "-c", "input.yaml", "--root", root)
				if code != cli.ExitOK || !strings.Contains(stdout, "0 file(s) changed") {
					t.Errorf("second generate was not a no-op (exit %d):\n%s", code, stdout)
				}
				return
			}
			if code != cli.ExitInvalid {
				t.Errorf("generate on an invalid description exited %d, want %d", code, cli.ExitInvalid)
			}
			if len(added) > 0 || stdout != "" {
				t.Errorf("generate wrote despite errors: %v\n%s", keys(added), stdout)
			}
			if _, err := os.Stat("want"); err == nil {
				t.Errorf("an invalid case has a want/ directory; remove it")
			}
		})
	}
}

func run(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := cli.Main(args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	for p, data := range golden.ReadTreeOrFail(t, from) {
		dst := filepath.Join(to, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := bytes.CutPrefix(data, []byte(golden.LinkPrefix)); ok {
			if err := os.Symlink(string(target), dst); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
