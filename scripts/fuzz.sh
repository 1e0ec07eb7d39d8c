#!/bin/sh
# Runs every cargo-fuzz target of fuzz/ for SECONDS each (default 30), one after the other,
# each from its corpus fuzz/corpus/<target>/ (the committed seeds; what libFuzzer finds is
# added there too, and git ignores it). Exits non-zero when a build fails or a target
# crashes (panics, aborts, leaks, runs over 60 s on one input), naming each crashing input
# (libFuzzer writes it under fuzz/artifacts/<target>/).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Installs cargo-fuzz when it is missing. Builds in $CARGO_TARGET_DIR, by default
# /var/tmp/concil-fuzz-target (sanitizer builds share nothing with the normal target/).
# libFuzzer needs nightly flags: stable is told to allow them (RUSTC_BOOTSTRAP=1) unless
# FUZZ_TOOLCHAIN names a toolchain to use instead (FUZZ_TOOLCHAIN=nightly).
#
# Every target is built once, by one `cargo fuzz build`, and its binary then run as
# `cargo fuzz run` runs it: `cargo fuzz run` would check (and, after any edit to the
# sources, rebuild and relink) before each target.
set -eu

seconds=${1:-30}
case $seconds in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac
[ $# -gt 0 ] && shift

cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/concil-fuzz-target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
    fuzz() { cargo "+$FUZZ_TOOLCHAIN" fuzz "$@"; }
    host=$(rustc "+$FUZZ_TOOLCHAIN" -vV | sed -n 's/^host: //p')
else
    fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }
    host=$(rustc -vV | sed -n 's/^host: //p')
fi

if [ $# -gt 0 ]; then
    targets=$*
    for target in $targets; do fuzz build "$target"; done
else
    targets=$(fuzz list)
    fuzz build
fi
# Where cargo fuzz build puts them (its default: release, with debug assertions).
bin=$CARGO_TARGET_DIR/$host/release

started=$(date +%s)
crashed=
for target in $targets; do
    corpus=fuzz/corpus/$target
    artifacts=$root/fuzz/artifacts/$target/
    mkdir -p "$corpus" "$artifacts"
    log=$CARGO_TARGET_DIR/fuzz-$target.log
    echo "fuzz.sh: $target for ${seconds}s (log: $log)" >&2
    if "$bin/$target" -artifact_prefix="$artifacts" -max_total_time="$seconds" \
        -max_len=65536 -timeout=60 -print_final_stats=1 "$corpus" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        echo "fuzz.sh: $target ok: ${runs:-?} runs, corpus $(find "$corpus" -type f | wc -l) files" >&2
        continue
    fi
    tail -n 40 "$log" >&2
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    echo "fuzz.sh: $target CRASHED; input: ${artifact:-none written, see $log}" >&2
    if [ -n "$artifact" ]; then
        echo "fuzz.sh: replay: RUSTC_BOOTSTRAP=1 cargo fuzz run $target $artifact" >&2
    fi
    crashed="$crashed $target"
done
echo "fuzz.sh: fuzzed for $(($(date +%s) - started))s" >&2
if [ -n "$crashed" ]; then
    echo "fuzz.sh: crashed:$crashed" >&2
    exit 1
fi
echo "fuzz.sh: every target ran ${seconds}s without a crash" >&2
