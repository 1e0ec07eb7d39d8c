# shellcheck shell=bash
# shellcheck disable=SC2154 # $repo, $bench_dir and log come from the sourcing script
# Shared by the benchmark scripts (sourced, not run): the session they time in, the source they
# build, their working directory and the registry they pull from. Expects $repo, $bench_dir and
# a log function; `set -euo pipefail` is the caller's.

# BENCH_AUTOGROUP_NICE=N (e.g. -20): re-runs the calling script in a session of its own, whose
# scheduler autogroup gets nice N for the timed rounds (not the build). Linux shares the CPU
# between sessions first, so on a machine shared with other users' builds this gives the
# measured tools the cores they would have on a quiet machine (and takes them from the others
# while the rounds run). Call as: bench_own_session "$0" "$@"
bench_own_session() {
    if [[ -n ${BENCH_AUTOGROUP_NICE:-} && -z ${BENCH_OWN_SESSION:-} ]]; then
        BENCH_OWN_SESSION=1 exec setsid --wait bash "$@"
    fi
}

# Sets $src to the source to build and $built to what it is: the working tree, or the commit
# BENCH_REV exported aside under $bench_dir (read-only for git), so a benchmark can name exactly
# what it measured while the tree is being edited.
bench_source() {
    src=$repo
    built="working tree at $(git -C "$repo" rev-parse --short HEAD)"
    git -C "$repo" diff --quiet HEAD || built+=" with uncommitted changes"
    if [[ -n ${BENCH_REV:-} ]]; then
        built="commit $(git -C "$repo" rev-parse --short "$BENCH_REV^{commit}")"
        src=$bench_dir/src-${built#commit }
        if [[ ! -d $src ]]; then
            rm -rf "$src.part"
            mkdir -p "$src.part"
            git -C "$repo" archive "$BENCH_REV" | tar -x -C "$src.part"
            mv "$src.part" "$src"
        fi
    fi
}

# Sets $work to a fresh directory /var/tmp/NAME.XXXXXX and $pids to an empty list of the
# servers started there; at exit the servers are stopped and the directory removed.
bench_workdir() {
    work=$(mktemp -d "/var/tmp/$1.XXXXXX")
    pids=()
    trap bench_cleanup EXIT
}

bench_cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}

# bench_start_registry [NAME [EXTRA_YAML]]: starts Debian's docker-registry on a port it picks
# (it logs the port, so no other process can take it first) with storage under
# $work/storage[-NAME] and EXTRA_YAML appended to its configuration (e.g. a pull-through cache's
# `proxy: {remoteurl: …}`), appends its PID to $pids, sets $registry to 127.0.0.1:PORT once
# GET /v2/ answers. Its log ($work/registry[-NAME].log) has a "response completed" line per
# request.
bench_start_registry() {
    local suffix=${1:+-$1} extra=${2:-}
    cat >"$work/registry$suffix.yml" <<YAML
version: 0.1
log: {level: info, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/storage$suffix}}
http: {addr: 127.0.0.1:0, secret: bench-only}
$extra
YAML
    docker-registry serve "$work/registry$suffix.yml" >"$work/registry$suffix.log" 2>&1 &
    pids+=($!)
    local pid=$!
    registry=
    for _ in $(seq 100); do
        registry=$(sed -n 's/.*msg="listening on \(127\.0\.0\.1:[0-9]*\)".*/\1/p' "$work/registry$suffix.log")
        [[ -n $registry ]] && curl -fs -o /dev/null "http://$registry/v2/" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    log "registry did not start"
    cat "$work/registry$suffix.log" >&2
    return 1
}

# bench_start_proxy OUT ARGS...: starts concil's throttle_proxy example ($throttle_proxy) with
# ARGS, appends its PID to $pids, sets $proxy to its address; OUT names its address file.
bench_start_proxy() {
    local out=$work/$1
    shift
    "$throttle_proxy" --listen 127.0.0.1:0 "$@" >"$out" &
    pids+=($!)
    proxy=
    for _ in $(seq 100); do
        proxy=$(head -n1 "$out")
        [[ -n $proxy ]] && return 0
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    log "throttle_proxy did not start"
    return 1
}

# bench_debian_layout: sets $layout to a one-layer OCI image layout of the Debian minbase root
# (scripts/fixtures.sh), built with umoci under $bench_dir, rebuilt only when the root tar
# changes; built aside, then renamed.
bench_debian_layout() {
    # The Debian minbase root as a tar: another run's scripts/fixtures.sh output, else our own.
    local rootfs_tar=$fixtures/debian/rootfs.tar
    if [[ ! -s $rootfs_tar ]]; then
        rootfs_tar=$bench_dir/debian/rootfs.tar
        [[ -s $rootfs_tar ]] || CONCIL_FIXTURES=$bench_dir "$repo/scripts/fixtures.sh" debian
    fi
    layout=$bench_dir/layout
    local stamp
    stamp="$rootfs_tar $(stat -c '%s %Y' "$rootfs_tar")"
    if [[ ! -d $layout || $(cat "$bench_dir/layout.source" 2>/dev/null) != "$stamp" ]]; then
        log "building the image layout from $rootfs_tar with umoci"
        mkdir -p "$bench_dir"
        rm -rf "$layout" "$layout.part" "$bench_dir/bundle"
        umoci init --layout "$layout.part"
        umoci new --image "$layout.part:latest"
        umoci unpack --image "$layout.part:latest" "$bench_dir/bundle" >/dev/null
        tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$rootfs_tar" -C "$bench_dir/bundle/rootfs"
        umoci repack --image "$layout.part:latest" "$bench_dir/bundle"
        rm -rf "$bench_dir/bundle"
        mv "$layout.part" "$layout"
        printf '%s\n' "$stamp" >"$bench_dir/layout.source"
    fi
}

# bench_run_timed NAME CMD...: one timed run; appends "wall cpu rss_kib" to $work/NAME unless
# NAME is -. A failing command stops the benchmark, with its stderr.
bench_run_timed() {
    local name=$1
    shift
    # Wall time from bash's microsecond clock: time(1)'s %e has 10 ms steps, too coarse for
    # warm pulls. CPU (10 ms steps too) and peak RSS from time(1).
    local started=$EPOCHREALTIME
    if ! /usr/bin/time -f '%U %S %M' -o "$work/time" "$@" >"$work/last.out" 2>"$work/last.err"; then
        log "failed: $*"
        cat "$work/last.err" >&2
        exit 1
    fi
    local ended=$EPOCHREALTIME
    [[ $name == - ]] || awk -v wall="$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.3f", b - a }')" \
        '{ printf "%s %.2f %s\n", wall, $1 + $2, $3 }' "$work/time" >>"$work/$name"
}

# bench_median FILE COLUMN
bench_median() {
    awk -v c="$2" '{ print $c }' "$1" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_ratio A B COLUMN: median over rounds of A's value / B's value in the same round
# ($work/A and $work/B, one line per round).
bench_ratio() {
    paste -d' ' "$work/$1" "$work/$2" |
        awk -v c="$3" '{ n = split($0, f, " "); h = n / 2; print (f[h + c] > 0 ? f[c] / f[h + c] : 0) }' |
        sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
