#!/usr/bin/env bash
# What one tar entry costs: peak RSS and wall time of tarsquash (through its tar2squash example,
# the function `concil convert` calls) against tar2sqfs (what concil 1.0 ran) on tars of many
# small entries, side by side.
#
#   scripts/bench-entries.sh [RUNS]        RUNS per tool and input, default 3 (after 1 warm-up)
#
# Inputs, written once by the entries_tar example under $CONCIL_FIXTURES/entries/ (plain tar,
# read from the page cache, so that neither tool decompresses):
#   files-1m.tar          1,000,000 empty files, 1000 to a directory: d123/f456789
#   files-10m-depth2.tar  10,000,000 empty files, 1000 to a directory two levels deep:
#                         d12/d34/f5678901 (one level of 10,000 directories makes tar2sqfs
#                         quadratic: over 40 minutes)
#   small-1m.tar          1,000,000 files of 100 distinct bytes each, two levels deep
# Each run is timed with /usr/bin/time (wall, peak RSS); the two tools alternate run by run so
# that load from elsewhere hits both alike. Reports medians, bytes of peak RSS per entry (files
# and directories) and the ratios tarsquash/tar2sqfs.
# Environment: BENCH_THREADS (default 2), BENCH_INPUTS (names of the inputs to run, default
# all three), BENCH_NICE (see bench-convert.sh), CONCIL_FIXTURES, CARGO_TARGET_DIR.
set -euo pipefail

runs=${1:-3}
threads=${BENCH_THREADS:-2}
repo=$(cd "$(dirname "$0")/.." && pwd)
fixtures=${CONCIL_FIXTURES:-/var/tmp/concil-fixtures}/entries
target=${CARGO_TARGET_DIR:-$repo/target}
inputs=(${BENCH_INPUTS:-files-1m files-10m-depth2 small-1m})

for tool in tar2sqfs tar /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench-entries: $tool not found" >&2; exit 1; }
done
(cd "$repo" && cargo build --release --quiet -p tarsquash --example tar2squash --example entries_tar)
tar2squash=$target/release/examples/tar2squash
entries_tar=$target/release/examples/entries_tar

# The entries_tar arguments of each input.
declare -A shape=(
    [files-1m]="1000000"
    [files-10m-depth2]="10000000 --depth 2"
    [small-1m]="1000000 --depth 2 --size 100"
)
mkdir -p "$fixtures"
for input in "${inputs[@]}"; do
    [[ -n ${shape[$input]:-} ]] || { echo "bench-entries: unknown input $input" >&2; exit 1; }
    tar=$fixtures/$input.tar
    if [[ ! -s $tar || ! -s $tar.entries ]]; then
        echo "writing $tar" >&2
        # shellcheck disable=SC2086 # the shape is a list of arguments
        "$entries_tar" ${shape[$input]} >"$tar.partial"
        tar -tf "$tar.partial" | wc -l >"$tar.entries"
        mv "$tar.partial" "$tar"
    fi
done

work=$(mktemp -d /var/tmp/bench-entries.XXXXXX)
trap 'rm -rf "$work"' EXIT

priority=()
[[ -n ${BENCH_NICE:-} ]] && priority=(nice -n "$BENCH_NICE")

# run_timed NAME CMD...: one timed run, appending "wall rss_kib" to $work/NAME.
run_timed() {
    local name=$1
    shift
    /usr/bin/time -f '%e %M' -o "$work/time" "${priority[@]}" "$@" >/dev/null
    cat "$work/time" >>"$work/$name"
}

# median FILE COLUMN
median() {
    awk -v c="$2" '{ print $c }' "$1" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

printf 'machine: %s cores, %s; load average before: %s\n' "$(nproc)" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'tar2squash: --threads %s; tar2sqfs %s: -c zstd -X level=10 -j %s; %s runs each, medians; nice: %s\n\n' \
    "$threads" "$(tar2sqfs --version 2>&1 | head -1 | awk '{ print $NF }')" "$threads" "$runs" "${BENCH_NICE:-0}"
printf '| input | entries | tar | tool | wall s | peak RSS MiB | RSS bytes/entry | image bytes |\n'
printf '|---|---|---|---|---|---|---|---|\n'
declare -a summary
for input in "${inputs[@]}"; do
    tar=$fixtures/$input.tar
    entries=$(cat "$tar.entries")
    rm -f "$work/tarsquash" "$work/tar2sqfs"
    tarsquash=("$tar2squash" "$tar" "$work/tarsquash.sqfs" --threads "$threads")
    reference=(bash -c 'tar2sqfs -c zstd -X level=10 -j "$2" -fq "$3" <"$1"' _ "$tar" "$threads" \
        "$work/tar2sqfs.sqfs")
    # One warm-up each (page cache), then alternating timed runs.
    "${tarsquash[@]}" >/dev/null
    "${reference[@]}"
    for _ in $(seq "$runs"); do
        run_timed tarsquash "${tarsquash[@]}"
        run_timed tar2sqfs "${reference[@]}"
    done
    tar_mib=$(awk -v b="$(stat -c %s "$tar")" 'BEGIN { printf "%.0f MiB", b / 1048576 }')
    for tool in tarsquash tar2sqfs; do
        rss=$(median "$work/$tool" 2)
        printf '| %s | %s | %s | %s | %s | %.0f | %.0f | %s |\n' "$input.tar" "$entries" "$tar_mib" \
            "$tool" "$(median "$work/$tool" 1)" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" \
            "$(awk -v k="$rss" -v n="$entries" 'BEGIN { print k * 1024 / n }')" \
            "$(stat -c %s "$work/$tool.sqfs")"
    done
    ratio() {
        awk -v a="$(median "$work/tarsquash" "$1")" -v b="$(median "$work/tar2sqfs" "$1")" \
            'BEGIN { printf "%.3f", a / b }'
    }
    summary+=("$input: tarsquash/tar2sqfs peak RSS $(ratio 2), wall $(ratio 1)")
done
printf '\n'
printf '%s\n' "${summary[@]}"
printf 'load average after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
