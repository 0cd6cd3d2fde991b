package generator_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/plan"
)

// benchDescription is the host bench/generate.sh uses: n interfaces with 8 addresses and a gateway each.
func benchDescription(n int) []byte {
	var b strings.Builder
	b.WriteString("version: 1\ncluster_cidrs: [10.244.0.0/16]\ninterfaces:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: eth%d\n    addresses: [", i)
		for a := 1; a <= 8; a++ {
			if a > 1 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "10.%d.%d.%d/24", i/250, i%250, a)
		}
		fmt.Fprintf(&b, "]\n    gateway: 10.%d.%d.254\n", i/250, i%250)
	}
	return []byte(b.String())
}

// BenchmarkPipeline measures parse, validate, plan and render in memory, the work every generate does whether
// or not a file changes. bench/generate.sh compares whole runs with netplan.
func BenchmarkPipeline(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		src := benchDescription(n)
		b.Run(fmt.Sprintf("interfaces=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h, rep := description.Parse(src)
				if rep.HasErrors(false) {
					b.Fatal(rep.Entries)
				}
				p, rep := plan.Build(h)
				if rep.HasErrors(false) {
					b.Fatal(rep.Entries)
				}
				if _, _, err := generator.Generate(p, generator.Options{Source: "host.yaml"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
