#!/usr/bin/env bash
# `concil pull` (release build) on links that break, and through a pull-through mirror, with
# `skopeo copy` side by side, on the Debian minbase layer of scripts/bench-pull.sh:
#
#   scripts/bench-network.sh [RUNS]     RUNS rounds, default 5 (after 1 untimed warm-up round)
#
# Starts Debian's docker-registry on a free 127.0.0.1 port, pushes the one-layer image, and puts
# two of concil's throttle_proxy in front of it, both at BENCH_RATE bytes/s on blob bodies
# (default 26214400 = 25 MiB/s):
#   steady   the link as it is
#   broken   the same link, each answer's connection closed after BENCH_CUT body bytes
#            (default 10485760 = 10 MiB): a 50 MB layer breaks four or five times
# and, for the mirror runs, a second docker-registry as a pull-through cache (`proxy:
# remoteurl:`) of the first, on loopback (no throttle). Each round, cold pulls (empty cache):
#   concil   concil pull --json --config CFG docker://…/bench/debian:latest
#   skopeo   skopeo copy docker://…/bench/debian:latest oci:DIR:latest (no conversion)
# on steady and broken (the tools alternate, so load from elsewhere hits both alike), counting
# the blob body bytes each proxy sent (its --stats file) against the blob sizes; then concil
# direct, concil through a fresh (empty) mirror, and concil through the now warm mirror.
# Reports medians and medians of per-round ratios.
#
# Runs scripts/install-deps.sh first; builds the image layout once into CONCIL_BENCH_DIR
# (default /var/tmp/concil-bench). Needs root. Environment: BENCH_REV, BENCH_AUTOGROUP_NICE
# (scripts/bench-lib.sh), BENCH_RATE, BENCH_CUT, CARGO_TARGET_DIR, CONCIL_FIXTURES,
# CONCIL_BENCH_DIR.
set -euo pipefail

export LC_ALL=C
runs=${1:-5}
rate=${BENCH_RATE:-26214400}
cut_every=${BENCH_CUT:-10485760}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
fixtures=${CONCIL_FIXTURES:-/var/tmp/concil-fixtures}
bench_dir=${CONCIL_BENCH_DIR:-/var/tmp/concil-bench}
image_path=bench/debian:latest

log() { printf 'bench-network: %s\n' "$*" >&2; }

# shellcheck source=scripts/bench-lib.sh
source "$repo/scripts/bench-lib.sh"
bench_own_session "$0" "$@"

"$repo/scripts/install-deps.sh"

bench_source
log "building concil and throttle_proxy (release) from $src"
(cd "$src" && cargo build --release --quiet -p concil --bin concil --example throttle_proxy)
concil=$target/release/concil
throttle_proxy=$target/release/examples/throttle_proxy

bench_debian_layout
bench_workdir bench-network
mkdir -p "$work/cache"

bench_start_registry
origin=$registry
skopeo copy --quiet --dest-tls-verify=false --format v2s2 "oci:$layout:latest" "docker://$origin/$image_path"
# What a pull must receive at least: the layer and config blobs (manifests are not blob bodies).
manifest_blob=$(jq -r '.manifests[0].digest' "$layout/index.json")
manifest_file=$layout/blobs/sha256/${manifest_blob#sha256:}
blob_bytes=$(jq '[.config.size] + [.layers[].size] | add' "$manifest_file")

bench_start_proxy steady.addr --upstream "$origin" --rate "$rate" --stats "$work/steady.stats"
steady=$proxy
bench_start_proxy broken.addr --upstream "$origin" --rate "$rate" --cut-every "$cut_every" \
    --stats "$work/broken.stats"
broken=$proxy
log "registry http://$origin; steady link http://$steady, broken link http://$broken"

declare -A address=([steady]=$steady [broken]=$broken [direct]=$origin)

# config NAME ADDRESS [MIRROR]: concil's configuration for a pull from ADDRESS, through MIRROR
# first when given.
config() {
    local name=$1 at=$2 mirror=${3:-}
    jq -n --arg cache "$work/cache/$name" --arg registry "http://$at" --arg mirror "$mirror" \
        '{cache_dir: $cache, disable_content_trust: true,
          remote_servers: {"127.0.0.1": ({registry: $registry}
            + (if $mirror == "" then {} else {mirrors: ["http://" + $mirror]} end))}}' \
        >"$work/$name.json"
}

# stats LINK: blob body bytes the link's proxy has sent so far (its file is rewritten every
# 100 ms: wait for it to settle).
stats() {
    sleep 0.3
    cat "$work/$1.stats"
}

# pull TOOL LINK NAME: one cold pull, timed into $work/NAME unless NAME is -; for the throttled
# links, the bytes the proxy sent go to $work/NAME.bytes.
pull() {
    local tool=$1 link=$2 name=$3 before after
    rm -rf "$work/cache/$tool-$link"
    [[ $link == direct ]] || before=$(stats "$link")
    case $tool in
    concil)
        config "$tool-$link" "${address[$link]}"
        bench_run_timed "$name" "$concil" pull --json --config "$work/$tool-$link.json" \
            "docker://${address[$link]}/$image_path"
        ;;
    skopeo)
        # skopeo may give up on a broken link (Debian 12's does: "happened during read:
        # unexpected EOF"); that is a result, counted, not the end of the benchmark.
        local started=$EPOCHREALTIME
        if /usr/bin/time -f '%U %S %M' -o "$work/time" skopeo copy --quiet --src-tls-verify=false \
            "docker://${address[$link]}/$image_path" "oci:$work/cache/$tool-$link:latest" \
            2>"$work/last.err"; then
            [[ $name == - ]] || awk -v wall="$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')" \
                '{ printf "%s %.2f %s\n", wall, $1 + $2, $3 }' "$work/time" >>"$work/$name"
        else
            [[ $name == - ]] || echo "$(tail -n1 "$work/last.err")" >>"$work/$name.failures"
        fi
        ;;
    esac
    if [[ $link != direct && $name != - ]]; then
        after=$(stats "$link")
        echo $((after - before)) >>"$work/$name.bytes"
    fi
}

# mirror_round NAME: a fresh pull-through mirror of the origin; concil pulls through it cold
# (the mirror fetches from the origin) and warm (the mirror has it; concil's cache is empty),
# and directly from the origin, alternating.
mirror_round() {
    local name=$1
    bench_start_registry "mirror-$name" "proxy: {remoteurl: http://$origin}"
    local mirror=$registry
    # The registry entry is the origin itself; the mirror is asked first.
    config concil-mirror "$origin" "$mirror"
    for state in cold warm; do
        rm -rf "$work/cache/concil-mirror"
        bench_run_timed "$([[ $name == 0 ]] && echo - || echo "mirror-$state")" \
            "$concil" pull --json --config "$work/concil-mirror.json" "docker://$origin/$image_path"
        jq -e --arg m "http://$mirror/" '[.layers[].source] | all(. == $m)' "$work/last.out" >/dev/null ||
            { log "the mirror did not serve the layers: $(cat "$work/last.out")"; exit 1; }
        pull concil direct "$([[ $name == 0 ]] && echo - || echo "direct-$state")"
    done
    kill "${pids[-1]}"
    wait "${pids[-1]}" 2>/dev/null || true
    unset 'pids[-1]'
    rm -rf "$work/storage-mirror-$name"
}

round() {
    local n=$1 link tool name
    for link in steady broken; do
        for tool in concil skopeo; do
            name=$tool-$link
            ((n == 0)) && name=-
            pull "$tool" "$link" "$name"
        done
    done
    mirror_round "$n"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
[[ -z ${BENCH_AUTOGROUP_NICE:-} ]] || echo "$BENCH_AUTOGROUP_NICE" >/proc/self/autogroup
log "warm-up round"
round 0
for run in $(seq "$runs"); do
    log "round $run of $runs"
    round "$run"
done

printf 'machine: %s cores, %s; load average before: %s\n' "$(nproc)" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$load_before"
printf 'built: %s; blobs: %s bytes; links: %s bytes/s, broken every %s bytes; %s rounds, medians\n\n' \
    "$built" "$blob_bytes" "$rate" "$cut_every" "$runs"
printf '| tool | link | wall s | CPU s | bytes received / blob bytes | wall broken/steady | failed runs |\n'
printf '|---|---|---|---|---|---|---|\n'
for tool in concil skopeo; do
    for link in steady broken; do
        name=$tool-$link
        if [[ ! -s $work/$name ]]; then
            printf '| %s | %s | failed in all %s rounds: %s | | | |\n' "$tool" "$link" "$runs" \
                "$(tail -n1 "$work/$name.failures" 2>/dev/null)"
            continue
        fi
        received=$(awk -v b="$blob_bytes" '{ print $1 / b }' "$work/$name.bytes" | sort -g |
            awk '{ v[NR] = $1 } END { printf "%.4f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
        slowdown=-
        [[ $link == broken ]] && slowdown=$(bench_ratio "$tool-broken" "$tool-steady" 1)
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$tool" "$link" "$(bench_median "$work/$name" 1)" \
            "$(bench_median "$work/$name" 2)" "$received" "$slowdown" \
            "$(cat "$work/$name.failures" 2>/dev/null | wc -l)"
    done
done
printf '\n| pull | wall s | wall ratio to direct |\n|---|---|---|\n'
for state in cold warm; do
    printf '| concil direct (%s round) | %s | - |\n' "$state" "$(bench_median "$work/direct-$state" 1)"
    printf '| concil through the mirror, mirror %s | %s | %s |\n' "$state" \
        "$(bench_median "$work/mirror-$state" 1)" "$(bench_ratio "mirror-$state" "direct-$state" 1)"
done

check() {
    local verdict
    verdict=$(awk -v v="$2" -v l="$3" 'BEGIN { print (v <= l) ? "met" : sprintf("MISSED by %.0f%%", (v / l - 1) * 100) }')
    printf -- '- %s: %s (target <= %s): %s\n' "$1" "$2" "$3" "$verdict"
}
printf '\ntargets:\n'
check "concil wall, broken/steady" "$(bench_ratio concil-broken concil-steady 1)" 1.15
check "concil bytes received / blob bytes, broken" \
    "$(awk -v b="$blob_bytes" '{ print $1 / b }' "$work/concil-broken.bytes" | sort -g | tail -n1)" 1.02
printf 'load average after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
