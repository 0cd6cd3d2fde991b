package generator_test

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/plan"
)

// hostileCases are the costliest descriptions of at most description.MaxSize bytes constructed so far, accepted or
// refused. Each must cost symroute a small multiple of what the YAML library alone takes to read the same bytes.
func hostileCases() map[string][]byte {
	fill := func(head, item, tail string) []byte {
		var b strings.Builder
		b.WriteString(head)
		for i := 0; b.Len()+len(item)+len(tail)+16 < description.MaxSize; i++ {
			fmt.Fprintf(&b, item, i/65536%256, i/256%256, i%256)
		}
		b.WriteString(tail)
		return []byte(b.String())
	}
	return map[string][]byte{
		// One interface with every address that fits: one rule each, one subnet each.
		"addresses": fill("version: 1\ninterfaces:\n  - name: eth0\n    addresses: [", "10.%d.%d.%d/32, ", "10.255.255.255/32]\n"),
		// As many interfaces as fit, all in one subnet: the overlap check's worst case, and a refusal for
		// running out of priorities for each one past the range.
		"shared-subnet": fill("version: 1\ninterfaces:\n", "  - {name: e%d.%d.%d, addresses: [10.0.0.1/8]}\n", ""),
		// An unknown key as long as the cap allows.
		"long-key": []byte("version: 1\n" + strings.Repeat("k", description.MaxSize-64) + ": 1\ninterfaces: []\n"),
		// Aliases standing for more than the description holds: refused.
		"alias-expansion": fill("version: 1\nx: &a [", "10.%d.%d.%d/32, ", "1.1.1.1/32]\ninterfaces:\n"+strings.Repeat("  - {name: e, addresses: *a}\n", 60)),
		// Nesting as deep as the YAML library allows.
		"deep": []byte("version: 1\ninterfaces: " + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + "\n"),
		// Nested prefixes on one interface over every /128 that fits on another: each address overlaps each
		// prefix, millions of pairs, listed up to a bound.
		"nested-overlaps": func() []byte {
			var b strings.Builder
			b.WriteString("version: 1\ninterfaces:\n  - name: ea\n    addresses: [")
			for bits := 16; bits <= 96; bits++ {
				fmt.Fprintf(&b, "\"2001:db8::ffff:%d/%d\", ", bits, bits)
			}
			b.WriteString("\"2001:db8::1/128\"]\n  - name: eb\n    addresses: [")
			for i := 2; b.Len() < description.MaxSize-64; i++ {
				fmt.Fprintf(&b, "\"2001:db8::1:%x/128\", ", i)
			}
			b.WriteString("\"2001:db8::2:1/128\"]\n")
			return []byte(b.String())
		}(),
		// An error in every value.
		"all-wrong": fill("version: 1\ninterfaces:\n  - name: eth0\n    addresses: [", "x%d.%d.%d, ", "y]\n"),
	}
}

// BenchmarkHostile measures check and render (parse, validate, plan, render in memory) on each hostile case
// against the YAML library reading the same bytes into nodes, in the same run. bench/hostile.sh prints the
// ratios.
func BenchmarkHostile(b *testing.B) {
	for name, src := range hostileCases() {
		b.Run(name+"/symroute", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				h, rep := description.Parse(src)
				rep.Write(io.Discard, "host.yaml", src, false) // printing every problem is part of the cost
				if rep.HasErrors(false) {
					continue
				}
				p, rep := plan.Build(h)
				if rep.HasErrors(false) {
					continue
				}
				if _, _, err := generator.Generate(p, generator.Options{Source: "host.yaml"}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/yaml-only", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				var n yaml.Node
				yaml.Unmarshal(src, &n)
			}
		})
	}
}

// TestHostileCasesFitTheCap keeps the benchmark honest: every case is within the size symroute reads.
func TestHostileCasesFitTheCap(t *testing.T) {
	for name, src := range hostileCases() {
		if len(src) > description.MaxSize {
			t.Errorf("%s is %d bytes, over the cap", name, len(src))
		}
	}
}
