#!/usr/bin/env bash
# `concil pull` (release build) against concil 1.0 (Python, PyPI) and `skopeo copy`, side by side,
# on one Debian minbase layer served by a local registry:
#
#   scripts/bench-pull.sh [RUNS]        RUNS rounds, default 5 (after 1 untimed warm-up round)
#
# Starts Debian's docker-registry on a free 127.0.0.1 port and concil's throttle_proxy example in
# front of it (blob bodies limited to BENCH_RATE bytes/s, default 26214400 = 25 MiB/s), pushes a
# one-layer image (Docker schema 2: concil 1.0 cannot read OCI manifests from distribution 2.8)
# built with umoci from the Debian minbase root of scripts/fixtures.sh, then, for each link
# (loopback, throttled), times a cold pull (empty cache) and a warm pull (everything cached) of:
#   concil    concil pull --json --config CFG docker://127.0.0.1:PORT/bench/debian:latest
#   concil1   concil 1.0's pull path (Store: manifest, config, layers), see concil1_pull.py below
#   skopeo    skopeo copy docker://127.0.0.1:PORT/bench/debian:latest oci:DIR:latest (no conversion)
# Every run: wall time (bash's microsecond clock), user+sys CPU (children included) and peak RSS
# (of the largest single process: for concil 1.0 the larger of python and tar2sqfs) from
# /usr/bin/time. The tools alternate within each round (cold A B C, warm A B C), so load from
# elsewhere hits all alike; reports medians and the median of the per-round ratios.
# Compression floor, measured in every round too: the CPU time zstd level 10 needs for the
# layer's tar cut into independent 128 KiB blocks on one thread (tarsquash's zstd_floor example,
# the floor of scripts/bench-convert.sh), divided by the cores: no pull that compresses every
# block can take less wall time. Also tarsquash's whole single-threaded conversion of that tar
# (tar2squash --threads 1) divided by the cores.
#
# Runs scripts/install-deps.sh first (Debian packages, and concil 1.0 into CONCIL1_VENV, default
# /var/tmp/concil1-venv, when missing); builds the image layout once into CONCIL_BENCH_DIR
# (default /var/tmp/concil-bench); makes the Debian root with scripts/fixtures.sh when neither
# CONCIL_FIXTURES (default /var/tmp/concil-fixtures) nor CONCIL_BENCH_DIR holds one. Needs root.
# Environment: BENCH_REV (build that commit instead of the working tree), BENCH_AUTOGROUP_NICE
# (below), BENCH_RATE, CARGO_TARGET_DIR, CONCIL_FIXTURES, CONCIL_BENCH_DIR, CONCIL1_VENV.
set -euo pipefail

export LC_ALL=C # one decimal point for awk, sort and $EPOCHREALTIME
runs=${1:-5}
rate=${BENCH_RATE:-26214400}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
fixtures=${CONCIL_FIXTURES:-/var/tmp/concil-fixtures}
bench_dir=${CONCIL_BENCH_DIR:-/var/tmp/concil-bench}
venv=${CONCIL1_VENV:-/var/tmp/concil1-venv}
cores=$(nproc)
image_path=bench/debian:latest

log() { printf 'bench-pull: %s\n' "$*" >&2; }

# BENCH_AUTOGROUP_NICE=N (e.g. -20): the timed rounds run in a session of their own with that
# autogroup nice (scripts/bench-lib.sh says why).
# shellcheck source=scripts/bench-lib.sh
source "$repo/scripts/bench-lib.sh"
bench_own_session "$0" "$@"

# The Debian packages and concil 1.0 (into $venv); quick when all are there.
"$repo/scripts/install-deps.sh"

bench_source
log "building concil, throttle_proxy and tar2squash (release) from $src"
(cd "$src" && cargo build --release --quiet -p concil --bin concil --example throttle_proxy &&
    cargo build --release --quiet -p tarsquash --example tar2squash --example zstd_floor)
concil=$target/release/concil
throttle_proxy=$target/release/examples/throttle_proxy
tar2squash=$target/release/examples/tar2squash
zstd_floor=$target/release/examples/zstd_floor

bench_debian_layout

bench_workdir bench-pull
mkdir -p "$work/cache"

# The layer's uncompressed tar, for the floor measurements.
manifest_blob=$(jq -r '.manifests[0].digest' "$layout/index.json")
layer_blob=$(jq -r '.layers[0].digest' "$layout/blobs/sha256/${manifest_blob#sha256:}")
layer_gz=$layout/blobs/sha256/${layer_blob#sha256:}
gzip -dc "$layer_gz" >"$work/layer.tar"

bench_start_registry

bench_start_proxy proxy.addr --upstream "$registry" --rate "$rate"
throttled=$proxy
log "registry http://$registry, throttled to $rate bytes/s at http://$throttled"

skopeo copy --quiet --dest-tls-verify=false --format v2s2 "oci:$layout:latest" "docker://$registry/$image_path"

# concil 1.0 has no pull command: its runtime (concil_run.StoreConfig) pulls with these calls.
# Its store runs tar2sqfs from its own package directory, where the PyPI wheel ships none: point
# it at the system's, which is what a working concil 1.0 installation ran.
cat >"$work/concil1_pull.py" <<'PY'
import platform
import shutil
import sys

from concil import store
from concil.oci_spec import current_architecture

config_path, image = sys.argv[1:]
store.TAR2SQFS[0] = shutil.which("tar2sqfs")
image_store = store.Store(image, config=store.ConcilConfig(config_path))
manifest = image_store.get_manifest(current_architecture(), platform.system().lower())
image_config = image_store.get_config(manifest["config"])
paths = {}
for layer in manifest["layers"]:
    path = image_store.get_layer(layer)
    paths[path.name] = path
for diff_id in image_config["rootfs"]["diff_ids"]:
    print(paths[diff_id])
PY

links=(loopback throttled)
tools=(concil concil1 skopeo)
declare -A address=([loopback]=$registry [throttled]=$throttled)

# A plain-HTTP registry without signatures: concil 1.0 looks remote_servers up by bare host
# name, concil by host:port and then bare host name, so "127.0.0.1" serves both.
for link in "${links[@]}"; do
    for tool in concil concil1; do
        cat >"$work/$tool-$link.json" <<JSON
{
  "cache_dir": "$work/cache/$tool-$link",
  "disable_content_trust": true,
  "remote_servers": {"127.0.0.1": {"registry": "http://${address[$link]}"}}
}
JSON
    done
done

# pull_command TOOL LINK: sets `pull` to the argument list of one pull.
pull_command() {
    local tool=$1 link=$2
    local image=docker://${address[$link]}/$image_path
    case $tool in
    concil) pull=("$concil" pull --json --config "$work/$tool-$link.json" "$image") ;;
    concil1) pull=("$venv/bin/python" "$work/concil1_pull.py" "$work/$tool-$link.json" "$image") ;;
    skopeo) pull=(skopeo copy --quiet --src-tls-verify=false "$image" "oci:$work/cache/$tool-$link:latest") ;;
    esac
}

# One round: per link, cold pulls of every tool into emptied caches, then warm pulls; then the
# two floor measurements. ROUND 0 is the untimed warm-up.
round() {
    local n=$1 link tool state name pull
    for link in "${links[@]}"; do
        for state in cold warm; do
            for tool in "${tools[@]}"; do
                [[ $state == cold ]] && rm -rf "$work/cache/$tool-$link"
                pull_command "$tool" "$link"
                name=$tool-$link-$state
                ((n == 0)) && name=-
                bench_run_timed "$name" "${pull[@]}"
                if [[ $tool == concil && $link == loopback && $state == cold && $n == 0 ]]; then
                    cp "$work/last.out" "$work/concil.json"
                fi
            done
        done
    done
    name=floor-convert
    ((n == 0)) && name=-
    bench_run_timed "$name" "$tar2squash" "$work/layer.tar" "$work/floor.sqfs" --threads 1
    name=floor-zstd
    ((n == 0)) && name=-
    bench_run_timed "$name" "$zstd_floor" "$work/layer.tar"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
[[ -z ${BENCH_AUTOGROUP_NICE:-} ]] || echo "$BENCH_AUTOGROUP_NICE" >/proc/self/autogroup
log "warm-up round"
round 0
# The two converters must agree on the layer they made (same diff_id, both squashfs).
concil_layer=$(jq -r '.layers[0].path' "$work/concil.json")
concil1_layer=$(find "$work/cache/concil1-loopback/layers" -maxdepth 1 -type f -name 'sha256:*' | head -n1)
[[ $(basename "$concil_layer") == "$(basename "$concil1_layer")" ]] ||
    { log "diff_ids differ: $concil_layer vs $concil1_layer"; exit 1; }
for run in $(seq "$runs"); do
    log "round $run of $runs"
    round "$run"
done

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# Every run's numbers, for a second look: one file per tool, link and pull; "wall cpu rss_kib".
results=$bench_dir/results-$(date +%Y%m%d-%H%M%S)
mkdir -p "$results"
for link in "${links[@]}"; do
    for state in cold warm; do
        for tool in "${tools[@]}"; do
            cp "$work/$tool-$link-$state" "$results/"
        done
    done
done
cp "$work/floor-zstd" "$work/floor-convert" "$results/"

printf 'machine: %s cores, %s; load average before: %s; CPU pressure (some, avg300): %s%%\n' "$cores" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$load_before" \
    "$(sed -n 's/^some .*avg300=\([0-9.]*\).*/\1/p' /proc/pressure/cpu 2>/dev/null)"
printf 'session autogroup: %s; raw runs in %s\n' "$(cat /proc/self/autogroup 2>/dev/null)" "$results"
printf 'layer: %s bytes gzip (blob), %s bytes tar; concil squashfs %s bytes, concil 1.0 (tar2sqfs) %s bytes\n' \
    "$(stat -c %s "$layer_gz")" "$(stat -c %s "$work/layer.tar")" \
    "$(stat -c %s "$concil_layer")" "$(stat -c %s "$concil1_layer")"
printf 'throttled link: %s bytes/s on blob bodies; %s rounds, medians\n\n' "$rate" "$runs"
printf '| link | pull | tool | wall s | CPU s (user+sys) | peak RSS MiB | wall ratio concil/tool | CPU ratio concil/tool |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for link in "${links[@]}"; do
    for state in cold warm; do
        for tool in "${tools[@]}"; do
            name=$tool-$link-$state
            if [[ $tool == concil ]]; then
                wall_ratio=- cpu_ratio=-
            else
                wall_ratio=$(bench_ratio "concil-$link-$state" "$name" 1)
                cpu_ratio=$(bench_ratio "concil-$link-$state" "$name" 2)
            fi
            printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$link" "$state" "$tool" \
                "$(bench_median "$work/$name" 1)" "$(bench_median "$work/$name" 2)" \
                "$(mib "$(bench_median "$work/$name" 3)")" "$wall_ratio" "$cpu_ratio"
        done
    done
done
floor_zstd=$(awk -v s="$(bench_median "$work/floor-zstd" 2)" -v c="$cores" 'BEGIN { printf "%.2f", s / c }')
floor_convert=$(awk -v s="$(bench_median "$work/floor-convert" 2)" -v c="$cores" 'BEGIN { printf "%.2f", s / c }')
printf '\ncompression floor: zstd -10 on 128 KiB blocks %s CPU s (%s s wall) / %s cores = %s s; ' \
    "$(bench_median "$work/floor-zstd" 2)" "$(bench_median "$work/floor-zstd" 1)" "$cores" "$floor_zstd"
printf 'tar2squash --threads 1 on the tar %s CPU s (%s s wall) / %s cores = %s s\n' \
    "$(bench_median "$work/floor-convert" 2)" "$(bench_median "$work/floor-convert" 1)" "$cores" "$floor_convert"

# check NAME VALUE LIMIT: one target line.
check() {
    local verdict
    verdict=$(awk -v v="$2" -v l="$3" 'BEGIN { print (v <= l) ? "met" : sprintf("MISSED by %.0f%%", (v / l - 1) * 100) }')
    printf -- '- %s: %s (target <= %s): %s\n' "$1" "$2" "$3" "$verdict"
}
concil_cold=$(bench_median "$work/concil-loopback-cold" 1)
printf '\ntargets:\n'
check "cold loopback, wall concil/concil 1.0" "$(bench_ratio concil-loopback-cold concil1-loopback-cold 1)" 0.85
check "cold loopback, concil wall / zstd floor" \
    "$(awk -v a="$concil_cold" -v f="$floor_zstd" 'BEGIN { printf "%.3f", a / f }')" 1.15
# The same question asked of CPU time, which the other users of the machine do not inflate.
check "cold loopback, concil CPU / zstd floor CPU" \
    "$(bench_ratio concil-loopback-cold floor-zstd 2)" 1.15
check "cold throttled, wall concil/concil 1.0" "$(bench_ratio concil-throttled-cold concil1-throttled-cold 1)" 0.65
check "warm loopback, wall concil/concil 1.0" "$(bench_ratio concil-loopback-warm concil1-loopback-warm 1)" 0.1
check "warm throttled, wall concil/concil 1.0" "$(bench_ratio concil-throttled-warm concil1-throttled-warm 1)" 0.1
peak=0
for link in "${links[@]}"; do
    for state in cold warm; do
        peak=$(awk -v a="$peak" -v b="$(sort -k3,3g "$work/concil-$link-$state" | tail -n1 | cut -d' ' -f3)" \
            'BEGIN { print (b > a) ? b : a }')
    done
done
check "concil peak RSS over all runs, MiB" "$(mib "$peak")" 64
printf 'load average after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
