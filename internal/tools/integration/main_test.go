package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/symroute/symroute/internal/tools/nettest"
)

var (
	binDir   string
	buildBin sync.Once
	binErr   error
)

func TestMain(m *testing.M) {
	code := nettest.Main(m)
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// symrouteBinary builds cmd/symroute once per test run: the scenarios run the real binary inside namespaces,
// as an operator would.
func symrouteBinary(t *testing.T) string {
	t.Helper()
	buildBin.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "symroute-bin-"); binErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-tags", "symroute_faults", "-o", filepath.Join(binDir, "symroute"), "../../../cmd/symroute").CombinedOutput()
		if err != nil {
			binErr = &buildError{err, string(out)}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "symroute")
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + ": " + e.out }
