#!/usr/bin/env bash
# The cache at cluster scale (release build of concil) on a synthetic cache of 2,000 images and
# 10,000 layers (scripts/bench-cache-gen.py: 64 KiB layers, a base layer shared by 20 images,
# 1,900 layers no record names, last uses spread over 30 days):
#
#   scripts/bench-cache.sh [RUNS]     RUNS rounds, default 5 (after 1 untimed warm-up round)
#
# Each round, with the files in the page cache:
#   ls        concil cache ls --config CFG
#   ls-json   concil cache ls --layers --json --config CFG
#   fit       concil cache clean --older-than 10^9 --max-size HALF --dry-run (the whole plan,
#             locks included, no unlink)
#   verify    concil cache verify  (every layer, manifest and config hashed, records read)
#   sha256sum find manifest config layers -type f | xargs sha256sum  (the same files)
# then RUNS times, each on fresh copies of the cache: a real `clean --max-size HALF`, and
# `rm -f` of exactly the files it removed (what those unlinks cost the file system alone).
# Reports medians (seconds), verify's and sha256sum's MB/s, and ratios (medians of per-round
# ratios).
#
# Needs python3; builds into CARGO_TARGET_DIR. Environment: BENCH_REV, BENCH_AUTOGROUP_NICE
# (scripts/bench-lib.sh), BENCH_IMAGES, BENCH_LAYERS, BENCH_LAYER_SIZE.
set -euo pipefail

export LC_ALL=C
runs=${1:-5}
images=${BENCH_IMAGES:-2000}
layers=${BENCH_LAYERS:-10000}
layer_size=${BENCH_LAYER_SIZE:-65536}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
bench_dir=${CONCIL_BENCH_DIR:-/var/tmp/concil-bench}

log() { printf 'bench-cache: %s\n' "$*" >&2; }

# shellcheck source=scripts/bench-lib.sh
source "$repo/scripts/bench-lib.sh"
bench_own_session "$0" "$@"

bench_source
log "building concil (release) from $src"
(cd "$src" && cargo build --release --quiet -p concil --bin concil)
concil=$target/release/concil

bench_workdir bench-cache
cache=$work/cache
log "writing a synthetic cache: $images images, $layers layers of $layer_size bytes"
python3 "$repo/scripts/bench-cache-gen.py" "$cache" "$images" "$layers" "$layer_size"
printf '{"cache_dir": "%s"}\n' "$cache" >"$work/config.json"
cfg=$work/config.json
total=$("$concil" cache ls --json --config "$cfg" | jq .total_bytes)
half=$((total / 2))
bytes=$(find "$cache/manifest" "$cache/config" "$cache/layers" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
log "cache: $total bytes in entries, $bytes bytes of files to hash; budget for fit: $half"

# round [timed]: one run of each; recorded only when "timed" is given (the warm-up is not).
round() {
    local timed=${1:-}
    as() { if [[ -n $timed ]]; then echo "$1"; else echo -; fi; }
    bench_run_timed "$(as ls)" "$concil" cache ls --config "$cfg"
    bench_run_timed "$(as ls-json)" "$concil" cache ls --layers --json --config "$cfg"
    bench_run_timed "$(as fit)" "$concil" cache clean --older-than 1000000000 --max-size "$half" --dry-run --config "$cfg"
    bench_run_timed "$(as verify)" "$concil" cache verify --config "$cfg"
    bench_run_timed "$(as sha256sum)" sh -c "find '$cache/manifest' '$cache/config' '$cache/layers' -type f -print0 | xargs -0 sha256sum >/dev/null"
}
round
for i in $(seq "$runs"); do
    log "round $i of $runs"
    round timed
done

# A real eviction, on copies (RUNS of them), against `rm -f` of exactly the files it removed
# (the file system's own cost of those unlinks) on another copy of the same cache.
listing() { (cd "$1" && find manifest config layers checksums images -type f -o -type l | sort); }
for i in $(seq "$runs"); do
    rm -rf "$work/copy" "$work/copy-rm"
    cp -a "$cache" "$work/copy"
    cp -a "$cache" "$work/copy-rm"
    printf '{"cache_dir": "%s"}\n' "$work/copy" >"$work/copy.json"
    sync
    bench_run_timed fit-real "$concil" cache clean --older-than 1000000000 --max-size "$half" --config "$work/copy.json"
    comm -23 <(listing "$cache") <(listing "$work/copy") >"$work/removed"
    sync
    bench_run_timed rm-same sh -c "cd '$work/copy-rm' && xargs rm -f <'$work/removed'"
done
removed_files=$(wc -l <"$work/removed")
after=$("$concil" cache ls --json --config "$work/copy.json" | jq .total_bytes)

mbs() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.0f", b / s / 1048576 }'; }
verify=$(bench_median "$work/verify" 1)
sha=$(bench_median "$work/sha256sum" 1)
cat <<REPORT
built: $built; $images images, $layers layers of $layer_size bytes; $runs rounds, medians (s)
cache ls                      $(bench_median "$work/ls" 1)   (peak RSS $(bench_median "$work/ls" 3) KiB)
cache ls --layers --json      $(bench_median "$work/ls-json" 1)
clean --max-size (dry run)    $(bench_median "$work/fit" 1)
clean --max-size (real)       $(bench_median "$work/fit-real" 1)   ($total -> $after bytes, budget $half, $removed_files files removed)
rm -f of the same files       $(bench_median "$work/rm-same" 1)
real eviction / rm -f         $(bench_ratio fit-real rm-same 1)
cache verify                  $verify   $(mbs "$verify") MB/s (peak RSS $(bench_median "$work/verify" 3) KiB)
sha256sum of the same files   $sha   $(mbs "$sha") MB/s
verify / sha256sum time       $(bench_ratio verify sha256sum 1)
REPORT
