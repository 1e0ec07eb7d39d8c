#!/usr/bin/env bash
# A throwaway registry, a real busybox image, and `concil pull` against it:
#
#   scripts/demo-registry.sh
#
# Builds concil (release), starts Debian's docker-registry on a free 127.0.0.1 port with its
# own config in a temp dir, builds a one-layer busybox image with umoci, pushes it with skopeo
# (Docker schema 2), pulls it with a temp concil config and cache, prints the result and the
# squashfs contents, then stops the registry and removes everything.
# Needs: scripts/install-deps.sh. Environment: CARGO_TARGET_DIR; CONCIL=path/to/concil to use
# that binary instead of building one.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
image_path=demo/busybox:latest

log() { printf 'demo: %s\n' "$*" >&2; }

for tool in docker-registry umoci skopeo busybox curl jq rdsquashfs; do
    command -v "$tool" >/dev/null || { log "$tool not found; run scripts/install-deps.sh"; exit 1; }
done

if [[ -n ${CONCIL:-} ]]; then
    concil=$CONCIL
else
    log "building concil (release)"
    (cd "$repo" && cargo build --release --quiet -p concil)
    concil=$target/release/concil
fi

work=$(mktemp -d /tmp/concil-demo.XXXXXX)
registry_pid=
cleanup() {
    if [[ -n $registry_pid ]]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the registry picks a free port and logs it, so no other process can take it first.
cat >"$work/registry.yml" <<YAML
version: 0.1
log: {level: info, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: $work/storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:0, secret: demo-only}
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
host=
for _ in $(seq 100); do
    host=$(sed -n 's/.*msg="listening on \(127\.0\.0\.1:[0-9]*\)".*/\1/p' "$work/registry.log")
    [[ -n $host ]] && curl -fs "http://$host/v2/" >/dev/null && break
    kill -0 "$registry_pid" 2>/dev/null || { cat "$work/registry.log" >&2; exit 1; }
    sleep 0.1
done
[[ -n $host ]] || { log "registry did not start"; cat "$work/registry.log" >&2; exit 1; }
log "registry on http://$host (pid $registry_pid)"

log "building a busybox image with umoci"
layout=$work/layout
umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci unpack --image "$layout:latest" "$work/bundle" >/dev/null
rootfs=$work/bundle/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for applet in $(busybox --list); do
    [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet"
done
echo "concil demo" >"$rootfs/etc/motd"
umoci repack --image "$layout:latest" "$work/bundle"

log "pushing docker://$host/$image_path"
skopeo copy --quiet --dest-tls-verify=false --format v2s2 \
    "oci:$layout:latest" "docker://$host/$image_path"
skopeo inspect --tls-verify=false "docker://$host/$image_path" |
    jq '{Digest, Architecture, Os, Layers}'

# A plain-HTTP registry without signatures: concil 1.0's config says so per server.
cat >"$work/config.json" <<JSON
{
  "cache_dir": "$work/cache",
  "disable_content_trust": true,
  "remote_servers": {"$host": {"registry": "http://$host"}}
}
JSON

log "concil pull docker://$host/$image_path"
"$concil" pull --json --config "$work/config.json" "docker://$host/$image_path" | tee "$work/pull.json" | jq .
jq -r '.layers[].path' "$work/pull.json" | while read -r layer; do
    log "squashfs $layer ($(stat -c %s "$layer") bytes), first entries:"
    rdsquashfs -l / "$layer" | head -n 8
done
log "cache:"
(cd "$work/cache" && find . -maxdepth 2 | sort)
