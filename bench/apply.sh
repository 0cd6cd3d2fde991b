#!/usr/bin/env bash
# apply-to-verified against networkd's own reload-to-configured (2 and 16 links), and the disruption a change
# causes (flood ping loss, longest TCP gap) on a changed and an unchanged link, for symroute apply, networkctl
# reload alone, and reload plus reconfiguring every link (netplan apply). The real systemd-networkd in network
# namespaces; needs root, and iputils ping (apt-get install -y iputils-ping; make deps installs the rest).
#
#   bench/apply.sh                 # the figures in README.md
#   bench/apply.sh --runs 21       # more runs; see --help
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build deps
command -v ping >/dev/null || { echo "bench: needs iputils ping (apt-get install -y iputils-ping)" >&2; exit 2; }
exec go run ./internal/tools/benchapply --symroute ./symroute "$@"
