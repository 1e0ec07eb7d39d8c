#!/usr/bin/env bash
# concil's converter (tarsquash, through its tar2squash example: the function `concil convert`
# calls) against tar2sqfs (what concil 1.0 ran), on the same .tar.gz inputs, side by side.
#
#   scripts/bench-convert.sh [RUNS]        RUNS per tool and input, default 5 (after 1 warm-up)
#
# Inputs: the Debian minbase root and the ~50k small files tree from scripts/fixtures.sh (built
# first when missing). Each run is timed with /usr/bin/time (wall, user+sys CPU, peak RSS); the
# two tools alternate run by run so that load from elsewhere hits both alike. Reports medians.
# Compression floor: the CPU time zstd level 10 needs for the tar cut into independent 128 KiB
# blocks (the zstd_floor example, one thread, CPU time so that load from elsewhere does not
# count), divided by the cores used: no converter that compresses every block can take less
# wall time.
# Environment: BENCH_THREADS (default 2), BENCH_NICE (run both tools under `nice -n N`, e.g.
# -10 on a machine busy with other work, so that the two are measured rather than the
# scheduler's share between them and the rest; needs root), CONCIL_FIXTURES, CARGO_TARGET_DIR.
set -euo pipefail

runs=${1:-5}
threads=${BENCH_THREADS:-2}
repo=$(cd "$(dirname "$0")/.." && pwd)
fixtures=${CONCIL_FIXTURES:-/var/tmp/concil-fixtures}
target=${CARGO_TARGET_DIR:-$repo/target}

for tool in tar2sqfs gzip /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench-convert: $tool not found" >&2; exit 1; }
done
"$repo/scripts/fixtures.sh" all
(cd "$repo" && cargo build --release --quiet -p tarsquash --example tar2squash --example zstd_floor)
tar2squash=$target/release/examples/tar2squash
zstd_floor=$target/release/examples/zstd_floor

work=$(mktemp -d /var/tmp/bench-convert.XXXXXX)
trap 'rm -rf "$work"' EXIT

priority=()
[[ -n ${BENCH_NICE:-} ]] && priority=(nice -n "$BENCH_NICE")

# run_timed NAME CMD...: one timed run, appending "wall cpu rss_kib" to $work/NAME.
run_timed() {
    local name=$1
    shift
    /usr/bin/time -f '%e %U %S %M' -o "$work/time" "${priority[@]}" "$@" >/dev/null
    awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$work/time" >>"$work/$name"
}

# median FILE COLUMN
median() {
    awk -v c="$2" '{ print $c }' "$1" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}


printf 'machine: %s cores, %s; load average before: %s\n' "$(nproc)" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'tar2squash: --threads %s; tar2sqfs %s: -j %s; %s runs each, medians; nice: %s\n\n' "$threads" \
    "$(tar2sqfs --version 2>&1 | head -1 | awk '{ print $NF }')" "$threads" "$runs" "${BENCH_NICE:-0}"
printf '| input | tar | tool | wall s | CPU s (user+sys) | peak RSS MiB | image bytes |\n'
printf '|---|---|---|---|---|---|---|\n'
declare -a summary
for input in debian/rootfs small/files; do
    gz=$fixtures/$input.tar.gz
    tar=$fixtures/$input.tar
    rm -f "$work/concil" "$work/tar2sqfs"
    # The two commands, as argument lists for /usr/bin/time.
    concil=("$tar2squash" "$gz" "$work/concil.sqfs" --threads "$threads")
    reference=(bash -c 'set -o pipefail; gzip -dc "$1" | tar2sqfs -c zstd -X level=10 -j "$2" -fq "$3"'
        _ "$gz" "$threads" "$work/tar2sqfs.sqfs")
    # One warm-up each (page cache), then alternating timed runs.
    "${concil[@]}" >/dev/null
    "${reference[@]}"
    for _ in $(seq "$runs"); do
        run_timed concil "${concil[@]}"
        run_timed tar2sqfs "${reference[@]}"
    done
    tar_mib=$(awk -v b="$(stat -c %s "$tar")" 'BEGIN { printf "%.0f MiB", b / 1048576 }')
    for tool in concil tar2sqfs; do
        image=$(stat -c %s "$work/$tool.sqfs")
        printf '| %s | %s | %s | %s | %s | %.1f | %s |\n' "$input.tar.gz" "$tar_mib" "$tool" \
            "$(median "$work/$tool" 1)" "$(median "$work/$tool" 2)" \
            "$(awk -v k="$(median "$work/$tool" 3)" 'BEGIN { print k / 1024 }')" "$image"
    done
    wall_ratio=$(awk -v a="$(median "$work/concil" 1)" -v b="$(median "$work/tar2sqfs" 1)" 'BEGIN { printf "%.3f", a / b }')
    cpu_ratio=$(awk -v a="$(median "$work/concil" 2)" -v b="$(median "$work/tar2sqfs" 2)" 'BEGIN { printf "%.3f", a / b }')
    size_ratio=$(awk -v a="$(stat -c %s "$work/concil.sqfs")" -v b="$(stat -c %s "$work/tar2sqfs.sqfs")" 'BEGIN { printf "%.4f", a / b }')
    floor_cpu=$("$zstd_floor" "$tar" | cut -d' ' -f1)
    floor=$(awk -v c="$floor_cpu" -v t="$threads" 'BEGIN { printf "%.2f", c / t }')
    summary+=("$input: wall ratio concil/tar2sqfs $wall_ratio, CPU ratio $cpu_ratio, size ratio $size_ratio; compression floor ${floor} s wall (zstd -10 on 128 KiB blocks: $floor_cpu s CPU / $threads cores)")
done
printf '\n'
printf '%s\n' "${summary[@]}"
printf 'load average after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
