// Package plantest builds a plan from a description for a test, failing the test on any error the description
// or the allocation reports.
package plantest

import (
	"testing"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/plan"
)

// Build parses desc and allocates its plan.
func Build(t testing.TB, desc string) *plan.Plan {
	t.Helper()
	h, rep := description.Parse([]byte(desc))
	if rep.HasErrors(false) {
		t.Fatal(rep.Entries)
	}
	p, rep := plan.Build(h)
	if rep.HasErrors(false) {
		t.Fatal(rep.Entries)
	}
	return p
}
