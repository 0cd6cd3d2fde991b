#!/usr/bin/env bash
# Builds the symroute-agent image as an OCI archive, with no container engine: umoci makes the layout, this
# script fills the one layer. Usage: build.sh AGENT_BINARY IMAGE_REF OUTPUT.oci.tar
#
# The layer holds the static agent and nft (the agent loads its connection-marking table with `nft -f`, the
# command the host's symroute-connmark unit runs at boot), with exactly the shared libraries nft needs, copied
# from this machine as ldd lists them. Nothing else: no shell, no package manager.
#
# ENTRYPOINT (default /usr/bin/symroute-agent) is where the binary goes and what the image runs; NFT=none leaves nft
# out (the tests build their pause image this way).
#
# Every file's mtime, the config's created time and the layout's tar are set from SOURCE_DATE_EPOCH, so the same
# inputs give the same archive.
set -euo pipefail

agent=$1 ref=$2 out=$3
: "${SOURCE_DATE_EPOCH:=0}"
nft=${NFT:-/usr/sbin/nft}
entrypoint=${ENTRYPOINT:-/usr/bin/symroute-agent}
name=${ref%:*} tag=${ref##*:}
for tool in umoci jq ldd; do
  command -v "$tool" >/dev/null || { echo "image: $tool is missing (make deps installs it)" >&2; exit 1; }
done
[ "$nft" = none ] || [ -x "$nft" ] || { echo "image: $nft is missing (make deps installs nftables)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
layout=$work/oci bundle=$work/bundle
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack --rootless --image "$layout:$tag" "$bundle" >/dev/null
rootfs=$bundle/rootfs

install -D -m 0755 "$agent" "$rootfs$entrypoint"
if [ "$nft" != none ]; then
  install -D -m 0755 "$nft" "$rootfs/usr/sbin/nft"
  # ldd's lines are "name => /path (addr)" and, for the loader, "/path (addr)"; the vDSO has no file.
  ldd "$nft" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
    install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
  done
fi
# The agent's root and sysctl tree are the host's, mounted here by the DaemonSet; the mount points exist in the
# image so that a read-only root filesystem needs no directory created at start.
mkdir -p "$rootfs/host" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
find "$rootfs" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

umoci repack --image "$layout:$tag" --history.created "$created" \
  --history.created_by "make image (packaging/image/build.sh)" "$bundle"
umoci config --image "$layout:$tag" --created "$created" --history.created "$created" \
  --history.created_by "make image: entrypoint and labels" \
  --architecture "$(go env GOARCH 2>/dev/null || echo amd64)" --os linux \
  --config.entrypoint "$entrypoint" --config.user 0:0 \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.label "org.opencontainers.image.title=$(basename "$entrypoint")" \
  --config.label "org.opencontainers.image.version=$tag" \
  --config.label "org.opencontainers.image.source=https://github.com/symroute/symroute"
umoci gc --layout "$layout"

# One manifest, named for every loader: containerd (ctr import) and docker load (25 and later) read
# io.containerd.image.name, podman load and skopeo the OCI ref.name, which may be a full reference.
jq --arg ref "$ref" '.manifests |= map(.annotations = {"io.containerd.image.name": $ref, "org.opencontainers.image.ref.name": $ref})' \
  "$layout/index.json" > "$work/index.json"
mv "$work/index.json" "$layout/index.json"
find "$layout" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$(dirname "$out")"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" -C "$layout" -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "image: $out ($ref, $(du -h "$out" | cut -f1))"
