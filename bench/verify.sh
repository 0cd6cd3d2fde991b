#!/usr/bin/env bash
# Times symroute verify against iproute2 as main grows (0, 100k, 1M routes), and apply from start to verified
# for 2 and 32 interfaces, with the real systemd-networkd in network namespaces. Needs root.
#
#   bench/verify.sh                      # the figures in README.md
#   bench/verify.sh --sizes 0,10000      # other sizes; see --help
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build deps
exec go run ./internal/tools/benchverify --symroute ./symroute "$@"
