#!/usr/bin/env bash
# Times `symroute generate` against `netplan generate` on equivalent descriptions: N interfaces with 8 addresses
# each, every interface with its own table (subnet and gateway) and one source rule per address. Both run in the
# same hyperfine invocation; the summary gives medians and each median's ratio to netplan's C generator. Peak
# memory comes from GNU time.
#
# "Every file written" is measured two ways: every file on disk differs from the one symroute wants, as after a
# change to every interface (netplan's generator likewise replaces all its files on every run), and an empty
# root, as for a new host class in a fleet's CI.
#
#   bench/generate.sh            # N = 1, 16, 256
#   bench/generate.sh 64         # other sizes
#   TMPDIR=/var/tmp bench/generate.sh   # another file system
#
# Needs: apt-get install -y netplan.io hyperfine time
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in netplan hyperfine /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool (apt-get install -y netplan.io hyperfine time)" >&2; exit 2; }
done
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(1 16 256)
make -s build
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# describe N writes the same host as a symroute description and as a netplan YAML.
describe() {
  local n=$1 dir=$2 i a table prio
  mkdir -p "$dir/np/etc/netplan"
  {
    echo "version: 1"
    echo "interfaces:"
    for ((i = 0; i < n; i++)); do
      echo "  - name: eth$i"
      printf '    addresses: ['
      for ((a = 1; a <= 8; a++)); do printf '10.%d.%d.%d/24%s' $((i / 250)) $((i % 250)) "$a" "$([ $a -lt 8 ] && echo ', ')"; done
      echo ']'
      echo "    gateway: 10.$((i / 250)).$((i % 250)).254"
    done
  } >"$dir/host.yaml"
  {
    echo "network:"
    echo "  version: 2"
    echo "  renderer: networkd"
    echo "  ethernets:"
    for ((i = 0; i < n; i++)); do
      table=$((1000000 + i)) prio=$((20010 + 10 * i))
      echo "    eth$i:"
      printf '      addresses: ['
      for ((a = 1; a <= 8; a++)); do printf '10.%d.%d.%d/24%s' $((i / 250)) $((i % 250)) "$a" "$([ $a -lt 8 ] && echo ', ')"; done
      echo ']'
      echo "      routes:"
      echo "        - {to: 10.$((i / 250)).$((i % 250)).0/24, scope: link, table: $table}"
      echo "        - {to: default, via: 10.$((i / 250)).$((i % 250)).254, table: $table}"
      echo "      routing-policy:"
      for ((a = 1; a <= 8; a++)); do echo "        - {from: 10.$((i / 250)).$((i % 250)).$a/32, table: $table, priority: $prio}"; done
    done
  } >"$dir/np/etc/netplan/50-bench.yaml"
  chmod 600 "$dir/np/etc/netplan/50-bench.yaml"
}

rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }

# summarize prints each command's median and mean, and its median over the C generator's, from hyperfine's JSON.
summarize() {
  python3 - "$1" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
c = next(r["median"] for r in results if r["command"].startswith("netplan's C generator"))
for r in results:
    print(f"  {r['command']:<45} median {r['median'] * 1000:7.1f} ms  mean {r['mean'] * 1000:7.1f} ms  "
          f"median / C generator {r['median'] / c:5.2f}")
PY
}

for n in "${sizes[@]}"; do
  dir=$work/$n
  describe "$n" "$dir"
  mkdir -p "$dir/root" # generate reads --root before it would create it
  ./symroute generate -c "$dir/host.yaml" --root "$dir/root" >/dev/null
  echo
  echo "## $n interface(s), 8 addresses each"
  hyperfine -N --warmup 3 --min-runs 20 --style basic --export-json "$work/written.json" \
    --prepare "find $dir/root/etc -type f -name *symroute* -exec truncate -s -1 {} +" \
    -n "symroute generate (replaces every file)" "./symroute generate -c $dir/host.yaml --root $dir/root" \
    --prepare "sh -c 'rm -rf $dir/root && mkdir $dir/root'" \
    -n "symroute generate (into an empty root)" "./symroute generate -c $dir/host.yaml --root $dir/root" \
    --prepare true -n "netplan generate" "netplan generate --root-dir $dir/np" \
    --prepare true -n "netplan's C generator alone" "/usr/libexec/netplan/generate --root-dir $dir/np"
  ./symroute generate -c "$dir/host.yaml" --root "$dir/root" >/dev/null
  hyperfine -N --warmup 3 --min-runs 20 --style basic --export-json "$work/unchanged.json" \
    -n "symroute generate (nothing changed)" "./symroute generate -c $dir/host.yaml --root $dir/root" \
    -n "netplan generate" "netplan generate --root-dir $dir/np" \
    -n "netplan's C generator alone" "/usr/libexec/netplan/generate --root-dir $dir/np"
  echo "summary, $n interface(s):"
  summarize "$work/written.json"
  summarize "$work/unchanged.json" | head -1
  echo "peak RSS (KiB): symroute $(rss ./symroute generate -c "$dir/host.yaml" --root "$dir/root"), netplan generate $(rss netplan generate --root-dir "$dir/np"), netplan's C generator $(rss /usr/libexec/netplan/generate --root-dir "$dir/np")"
done
