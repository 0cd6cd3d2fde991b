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

// TwoNIC describes the integration site's host: eth-a with the default route, eth-b on the client's LAN.
const TwoNIC = `version: 1
interfaces:
  - name: eth-a
    addresses: [192.168.1.10/24]
    gateway: 192.168.1.1
    default_route: true
  - name: eth-b
    addresses: [10.0.0.1/24]
    gateway: 10.0.0.254
`
