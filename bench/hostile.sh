#!/usr/bin/env bash
# The costliest descriptions within the 1 MiB cap (generator/hostile_bench_test.go): check and render in memory,
# against the YAML library alone reading the same bytes, in the same run. Prints each case's time and allocation
# as a ratio to the YAML library's; linear cost shows as a ratio that stays small whatever the case.
#
#   bench/hostile.sh          # 5 runs of each
#   bench/hostile.sh 10       # more runs
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5}
go test -run '^$' -bench Hostile -benchmem -count "$count" ./generator/ | awk '
  /^BenchmarkHostile\// {
    split($1, p, "/"); c = p[2]; who = p[3]; sub(/-[0-9]+$/, "", who)
    ns[c, who] += $3; by[c, who] += $7; n[c, who]++; cases[c] = 1
  }
  END {
    printf "%-16s %12s %12s %8s %12s %12s %8s\n", "case", "symroute", "yaml only", "ratio", "symroute", "yaml only", "ratio"
    for (c in cases) {
      s = ns[c, "symroute"] / n[c, "symroute"]; y = ns[c, "yaml-only"] / n[c, "yaml-only"]
      sb = by[c, "symroute"] / n[c, "symroute"]; yb = by[c, "yaml-only"] / n[c, "yaml-only"]
      printf "%-16s %10.1fms %10.1fms %7.1fx %10.1fMB %10.1fMB %7.1fx\n", c, s / 1e6, y / 1e6, s / y, sb / 1e6, yb / 1e6, sb / yb
    }
  }'
