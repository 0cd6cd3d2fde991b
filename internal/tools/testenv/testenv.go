// Package testenv decides what a test does when this machine lacks what it needs (root, a program): it skips,
// saying what is missing, unless SYMROUTE_REQUIRE_ROOT_TESTS=1, where every such test must run and the same
// reason fails it. CI sets the variable, so a missing package or privilege there is a failure, not a quiet skip.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
)

// RequireVar names the variable that turns every skip for a missing privilege or program into a failure.
const RequireVar = "SYMROUTE_REQUIRE_ROOT_TESTS"

// T is what testenv needs from its caller: testing.TB, or a program's adapter.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Required reports whether every test must run here (RequireVar=1).
func Required() bool { return os.Getenv(RequireVar) == "1" }

// Skipf skips the test with the reason, or fails it with the same reason where every test must run.
func Skipf(t T, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("%s (%s=1: this test must run here)", fmt.Sprintf(format, args...), RequireVar)
	}
	t.Skipf(format, args...)
}

// Root skips (or fails) the test unless it runs as root; why says what root is needed for.
func Root(t T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skipf(t, "needs root %s", why)
	}
}

// Program returns the path of the program name, or skips (or fails) the test when this machine lacks it; pkg
// names the Debian package that .ci/install-deps installs for it.
func Program(t T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Skipf(t, "needs %s (Debian package %s; make deps installs it as root), which this machine lacks: %v", name, pkg, err)
	}
	return path
}
