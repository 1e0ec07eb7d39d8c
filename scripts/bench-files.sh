#!/usr/bin/env bash
# Pulling an image from a file (release build of concil), on the Debian minbase layer of
# scripts/bench-pull.sh (a one-layer umoci layout, gzip):
#
#   scripts/bench-files.sh [RUNS]     RUNS rounds, default 5 (after 1 untimed warm-up round)
#
# The layout is tarred into an OCI archive and pushed to Debian's docker-registry on loopback.
# Each round, cold (empty cache, files in the page cache), the tools alternating:
#   archive    concil pull oci-archive:debian.tar:latest
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
concil pull docker:// (loopback)        $(bench_median "$work/registry" 1)   $(bench_median "$work/registry" 3)
skopeo copy + tar2sqfs                  $(bench_median "$work/skopeo" 1)   $(bench_median "$work/skopeo" 3)
archive / registry (wall)               $(bench_ratio archive registry 1)
archive / registry (peak RSS)           $(bench_ratio archive registry 3)
archive / skopeo + tar2sqfs (wall)      $(bench_ratio archive skopeo 1)
REPORT
