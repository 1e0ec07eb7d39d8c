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

# Starts Debian's docker-registry on a port it picks (it logs the port, so no other process can
# take it first) with storage under $work, appends its PID to $pids, sets $registry to
# 127.0.0.1:PORT once GET /v2/ answers. Its log ($work/registry.log) has a "response completed"
# line per request.
bench_start_registry() {
    cat >"$work/registry.yml" <<YAML
version: 0.1
log: {level: info, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/storage}}
http: {addr: 127.0.0.1:0, secret: bench-only}
YAML
    docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
    pids+=($!)
    local pid=$!
    registry=
    for _ in $(seq 100); do
        registry=$(sed -n 's/.*msg="listening on \(127\.0\.0\.1:[0-9]*\)".*/\1/p' "$work/registry.log")
        [[ -n $registry ]] && curl -fs -o /dev/null "http://$registry/v2/" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    log "registry did not start"
    cat "$work/registry.log" >&2
    return 1
}
