#!/usr/bin/env bash
# Pulling an image from a file (release build of concil), on the Debian minbase layer of
# scripts/bench-pull.sh (a one-layer umoci layout, gzip):
#
#   scripts/bench-files.sh [RUNS]     RUNS rounds, default 5 (after 1 untimed warm-up round)
#
# The layout is tarred into an OCI archive and pushed to Debian's docker-registry on loopback.
# Each round, cold (empty cache, files in the page cache), the tools alternating:
#   archive    concil pull oci-archive:debian.tar:latest
#   signed     concil pull oci-archive:debian-signed.tar:latest, content trust on: the same
#              archive with a cosign signature (the sha256-<hex>.sig tag, made here with
#              openssl) that concil checks before it converts the layer
#   registry   concil pull docker://127.0.0.1:PORT/bench/debian:latest
#   skopeo     skopeo copy oci-archive:debian.tar:latest oci:OUT:latest, then tar2sqfs of its
#              layer (gzip -dc | tar2sqfs, zstd as concil 1.0 made it): what a site does today
# Reports medians of wall time and peak RSS, and medians of per-round ratios.
#
# Environment: BENCH_REV, BENCH_AUTOGROUP_NICE (scripts/bench-lib.sh), CARGO_TARGET_DIR,
# CONCIL_FIXTURES, CONCIL_BENCH_DIR. Runs scripts/install-deps.sh first.
set -euo pipefail

export LC_ALL=C
runs=${1:-5}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
fixtures=${CONCIL_FIXTURES:-/var/tmp/concil-fixtures}
bench_dir=${CONCIL_BENCH_DIR:-/var/tmp/concil-bench}
image_path=bench/debian:latest

log() { printf 'bench-files: %s\n' "$*" >&2; }

# shellcheck source=scripts/bench-lib.sh
source "$repo/scripts/bench-lib.sh"
bench_own_session "$0" "$@"

"$repo/scripts/install-deps.sh"

bench_source
log "building concil (release) from $src"
(cd "$src" && cargo build --release --quiet -p concil --bin concil)
concil=$target/release/concil

bench_debian_layout
bench_workdir bench-files
tar -cf "$work/debian.tar" -C "$layout" .

# The signed copy: a P-256 key (openssl), cosign's simple-signing payload for the image's
# digest, and its signature manifest tagged sha256-<hex>.sig in the layout's index.json.
signed_layout=$work/signed-layout
rm -rf "$signed_layout" && cp -r "$layout" "$signed_layout"
mkdir -p "$work/signing/cosign"
openssl ecparam -name prime256v1 -genkey -noout -out "$work/signing/key.pem"
openssl ec -in "$work/signing/key.pem" -pubout -out "$work/signing/cosign/release.pub" 2>/dev/null
put_blob() { # FILE: stores it in the signed layout, prints its digest
    local hex
    hex=$(sha256sum "$1" | cut -d' ' -f1)
    cp "$1" "$signed_layout/blobs/sha256/$hex"
    echo "sha256:$hex"
}
image_digest=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "latest") | .digest' "$layout/index.json")
printf '{"critical":{"identity":{"docker-reference":"bench/debian"},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":null}' \
    "$image_digest" >"$work/signing/payload"
signature=$(openssl dgst -sha256 -sign "$work/signing/key.pem" "$work/signing/payload" | base64 -w0)
payload_digest=$(put_blob "$work/signing/payload")
printf '{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$payload_digest" >"$work/signing/config"
config_digest=$(put_blob "$work/signing/config")
jq -cn --arg payload "$payload_digest" --argjson psize "$(stat -c %s "$work/signing/payload")" \
    --arg config "$config_digest" --argjson csize "$(stat -c %s "$work/signing/config")" \
    --arg signature "$signature" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $config, size: $csize},
      layers: [{mediaType: "application/vnd.dev.cosign.simplesigning.v1+json", digest: $payload,
                size: $psize, annotations: {"dev.cosignproject.cosign/signature": $signature}}]}' \
    >"$work/signing/manifest"
manifest_digest=$(put_blob "$work/signing/manifest")
jq --arg digest "$manifest_digest" --argjson size "$(stat -c %s "$work/signing/manifest")" \
    --arg tag "${image_digest/:/-}.sig" \
    '.manifests += [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $digest,
                     size: $size, annotations: {"org.opencontainers.image.ref.name": $tag}}]' \
    "$layout/index.json" >"$signed_layout/index.json"
tar -cf "$work/debian-signed.tar" -C "$signed_layout" .
printf '{"cache_dir": "%s"}\n' "$work/cache" >"$work/signing/config.json"

bench_start_registry
skopeo copy --quiet --dest-tls-verify=false --format v2s2 "oci:$layout:latest" "docker://$registry/$image_path"
printf '{"cache_dir": "%s", "disable_content_trust": true, "remote_servers": {"127.0.0.1": {"registry": "http://%s"}}}\n' \
    "$work/cache" "$registry" >"$work/config.json"

round() {
    local timed=${1:-}
    as() { if [[ -n $timed ]]; then echo "$1"; else echo -; fi; }
    rm -rf "$work/cache"
    bench_run_timed "$(as archive)" "$concil" pull --json --config "$work/config.json" "oci-archive:$work/debian.tar:latest"
    rm -rf "$work/cache"
    bench_run_timed "$(as signed)" "$concil" pull --json --config "$work/signing/config.json" "oci-archive:$work/debian-signed.tar:latest"
    rm -rf "$work/cache"
    bench_run_timed "$(as registry)" "$concil" pull --json --config "$work/config.json" "docker://$registry/$image_path"
    rm -rf "$work/out" "$work/out.sqfs"
    bench_run_timed "$(as skopeo-copy)" skopeo copy --quiet "oci-archive:$work/debian.tar:latest" "oci:$work/out:latest"
    local manifest layer
    manifest=$(jq -r '.manifests[0].digest' "$work/out/index.json")
    layer=$(jq -r '.layers[0].digest' "$work/out/blobs/sha256/${manifest#sha256:}")
    bench_run_timed "$(as tar2sqfs)" sh -c "gzip -dc '$work/out/blobs/sha256/${layer#sha256:}' | tar2sqfs --quiet --no-skip --force --compressor zstd '$work/out.sqfs'"
}
log "warm-up round"
round
for i in $(seq "$runs"); do
    log "round $i of $runs"
    round timed
done
# skopeo + tar2sqfs as one: per round, the sum of the two.
paste -d' ' "$work/skopeo-copy" "$work/tar2sqfs" |
    awk '{ printf "%.3f %.2f %s\n", $1 + $4, $2 + $5, ($3 > $6 ? $3 : $6) }' >"$work/skopeo"

cat <<REPORT
built: $built; $runs rounds, cold pulls, medians
                                        wall s   peak RSS KiB
concil pull oci-archive:                $(bench_median "$work/archive" 1)   $(bench_median "$work/archive" 3)
concil pull oci-archive:, signed        $(bench_median "$work/signed" 1)   $(bench_median "$work/signed" 3)
concil pull docker:// (loopback)        $(bench_median "$work/registry" 1)   $(bench_median "$work/registry" 3)
skopeo copy + tar2sqfs                  $(bench_median "$work/skopeo" 1)   $(bench_median "$work/skopeo" 3)
archive / registry (wall)               $(bench_ratio archive registry 1)
archive / registry (peak RSS)           $(bench_ratio archive registry 3)
archive / skopeo + tar2sqfs (wall)      $(bench_ratio archive skopeo 1)
signed / unsigned archive (wall)        $(bench_ratio signed archive 1)
signed / unsigned archive (peak RSS)    $(bench_ratio signed archive 3)
REPORT
