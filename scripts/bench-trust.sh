#!/usr/bin/env bash
# What content trust costs a pull: `concil pull --json` (release build) of one image from a local
# registry, unsigned against cosign-signed against Notary-signed, side by side in one run:
#
#   scripts/bench-trust.sh [RUNS]       RUNS rounds, default 5 (after 1 untimed warm-up round)
#
# The image: one layer, the Debian minbase root of scripts/fixtures.sh (its rootfs.tar.gz as the
# blob), pushed as an OCI manifest with curl to Debian's docker-registry on a free 127.0.0.1 port
# (plain HTTP), tag `latest`; a second manifest with the same layer but another digest, tag
# `unsigned`, is signed by nothing. Three configurations pull it:
#   unsigned  "disable_content_trust": true
#   cosign    "content_trust": "cosign", an openssl-made P-256 key in cosign/ beside the config,
#             and the tag sha256-<hex>.sig in cosign's format (simple-signing payload layer,
#             base64 DER ECDSA signature in its annotation), signed with openssl, pushed with curl
#   notary    "content_trust": "notary", remote_servers.<registry>.notary = a plain-HTTP
#             notary-server (memory storage) where the real `notary` client published the tag
#             (init, addhash latest SIZE --sha256 HEX of the manifest, publish)
# First it checks that each really verifies ("verified": none, cosign, notary in the JSON) and
# that cosign and notary refuse the tag `unsigned` (exit status 10). A round: cold pulls
# (emptied cache dir, Notary's TUF metadata included) unsigned, cosign, notary; then
# BENCH_WARM_REPS (default 10) times warm pulls (everything cached; verification still runs)
# unsigned, cosign, notary. Wall time from bash's microsecond clock; CPU (user + sys) from
# bash's `times` around the run (1 ms steps: time(1)'s 10 ms steps cannot see a warm pull; it
# counts /usr/bin/time itself too, shown as the `floor` row, `/usr/bin/time /bin/true`); peak
# RSS from /usr/bin/time. Ratios and differences against unsigned are taken within the same
# round (cold) or repetition (warm), then the median. The warm-up round also counts the HTTP
# requests of each pull in the registry's and notary-server's logs ("response completed").
#
# Needs root for scripts/fixtures.sh when the Debian root is not there yet. Environment:
# BENCH_REV (build that commit instead of the working tree), BENCH_AUTOGROUP_NICE (as in
# scripts/bench-pull.sh: the timed rounds' session gets that autogroup nice, e.g. -20),
# BENCH_WARM_REPS, CARGO_TARGET_DIR, CONCIL_FIXTURES, CONCIL_BENCH_DIR.
set -euo pipefail

export LC_ALL=C # one decimal point for awk, sort and $EPOCHREALTIME
runs=${1:-5}
warm_reps=${BENCH_WARM_REPS:-10}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
fixtures=${CONCIL_FIXTURES:-/var/tmp/concil-fixtures}
bench_dir=${CONCIL_BENCH_DIR:-/var/tmp/concil-bench}
image_repo=bench/debian
trusts=(unsigned cosign notary)

log() { printf 'bench-trust: %s\n' "$*" >&2; }

# shellcheck source=scripts/bench-lib.sh
source "$repo/scripts/bench-lib.sh"
bench_own_session "$0" "$@"

"$repo/scripts/install-deps.sh"

bench_source
log "building concil (release) from $src"
(cd "$src" && cargo build --release --quiet -p concil --bin concil)
concil=$target/release/concil

layer_gz=$fixtures/debian/rootfs.tar.gz
[[ -s $layer_gz ]] || CONCIL_FIXTURES=$fixtures "$repo/scripts/fixtures.sh" debian

bench_workdir bench-trust

# wait_for LOG_PID URL: polls URL until it answers, while process LOG_PID lives.
wait_for() {
    for _ in $(seq 100); do
        curl -fs -o /dev/null "$2" && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

bench_start_registry

# notary-server cannot report a port it picked: take a free one, retry if it was taken meanwhile.
notary=
for _ in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    jq -n --arg addr "127.0.0.1:$port" '{server: {http_addr: $addr}, trust_service: {type: "local"},
        storage: {backend: "memory"}, logging: {level: "info"}}' >"$work/notary-server.json"
    notary-server -config "$work/notary-server.json" >"$work/notary.log" 2>&1 &
    pids+=($!)
    if wait_for "${pids[-1]}" "http://127.0.0.1:$port/_notary_server/health"; then
        notary=http://127.0.0.1:$port
        break
    fi
done
[[ -n $notary ]] || { log "notary-server did not start"; cat "$work/notary.log" >&2; exit 1; }
log "registry http://$registry, notary-server $notary"

# push_blob FILE: uploads FILE (POST, then PUT with the digest) unless the registry has it.
push_blob() {
    local digest location
    digest=sha256:$(sha256sum "$1" | cut -c1-64)
    curl -fs -o /dev/null -I "http://$registry/v2/$image_repo/blobs/$digest" && return 0
    location=$(curl -fsS -X POST -o /dev/null -D - "http://$registry/v2/$image_repo/blobs/uploads/" |
        tr -d '\r' | sed -n 's/^[Ll]ocation: *//p')
    [[ $location == http* ]] || location=http://$registry$location
    curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -T "$1" \
        "$location&digest=$digest"
}

# descriptor MEDIA_TYPE FILE: its OCI descriptor.
descriptor() {
    jq -n --arg type "$1" --arg digest "sha256:$(sha256sum "$2" | cut -c1-64)" \
        --argjson size "$(stat -c %s "$2")" '{mediaType: $type, digest: $digest, size: $size}'
}

# push_manifest FILE TAG
push_manifest() {
    curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$1" "http://$registry/v2/$image_repo/manifests/$2"
}

log "pushing the image ($(stat -c %s "$layer_gz") bytes of layer)"
diff_id=sha256:$(gzip -dc "$layer_gz" | sha256sum | cut -c1-64)
jq -n --arg arch "$(dpkg --print-architecture)" --arg diff_id "$diff_id" \
    '{architecture: $arch, os: "linux", rootfs: {type: "layers", diff_ids: [$diff_id]}}' >"$work/config.json"
push_blob "$work/config.json"
push_blob "$layer_gz"
jq -n --argjson config "$(descriptor application/vnd.oci.image.config.v1+json "$work/config.json")" \
    --argjson layer "$(descriptor application/vnd.oci.image.layer.v1.tar+gzip "$layer_gz")" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: $config,
      layers: [$layer]}' >"$work/manifest.json"
push_manifest "$work/manifest.json" latest
# The same image under another digest, which nothing signs.
jq '.annotations = {"org.opencontainers.image.description": "not signed"}' "$work/manifest.json" \
    >"$work/manifest-unsigned.json"
push_manifest "$work/manifest-unsigned.json" unsigned
manifest_hex=$(sha256sum "$work/manifest.json" | cut -c1-64)

# cosign: key pair, simple-signing payload, its signature, the sha256-<hex>.sig manifest.
for trust in "${trusts[@]}"; do mkdir -p "$work/$trust"; done
mkdir -p "$work/cosign/cosign"
openssl ecparam -name prime256v1 -genkey -noout -out "$work/cosign.key"
openssl ec -in "$work/cosign.key" -pubout -out "$work/cosign/cosign/bench.pub" 2>/dev/null
jq -cn --arg ref "$registry/$image_repo" --arg digest "sha256:$manifest_hex" \
    '{critical: {identity: {"docker-reference": $ref}, image: {"docker-manifest-digest": $digest},
      type: "cosign container image signature"}, optional: null}' >"$work/payload.json"
signature=$(openssl dgst -sha256 -sign "$work/cosign.key" "$work/payload.json" | base64 -w0)
jq -n --arg diff_id "sha256:$(sha256sum "$work/payload.json" | cut -c1-64)" \
    '{architecture: "", os: "", config: {}, rootfs: {type: "layers", diff_ids: [$diff_id]}}' \
    >"$work/sig-config.json"
push_blob "$work/sig-config.json"
push_blob "$work/payload.json"
jq -n --argjson config "$(descriptor application/vnd.oci.image.config.v1+json "$work/sig-config.json")" \
    --argjson layer "$(descriptor application/vnd.dev.cosign.simplesigning.v1+json "$work/payload.json")" \
    --arg signature "$signature" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: $config,
      layers: [$layer + {annotations: {"dev.cosignproject.cosign/signature": $signature}}]}' \
    >"$work/sig-manifest.json"
push_manifest "$work/sig-manifest.json" "sha256-$manifest_hex.sig"

# Notary: the real client publishes tag latest in the GUN concil derives (host:port/repository).
jq -n --arg dir "$work/notary-client" --arg url "$notary" \
    '{trust_dir: $dir, remote_server: {url: $url}}' >"$work/notary-client.json"
export NOTARY_ROOT_PASSPHRASE=bench-only NOTARY_TARGETS_PASSPHRASE=bench-only \
    NOTARY_SNAPSHOT_PASSPHRASE=bench-only
gun=$registry/$image_repo
{
    notary -c "$work/notary-client.json" init "$gun"
    notary -c "$work/notary-client.json" addhash "$gun" latest "$(stat -c %s "$work/manifest.json")" \
        --sha256 "$manifest_hex"
    notary -c "$work/notary-client.json" publish "$gun"
} >"$work/notary-client.log" 2>&1 || { cat "$work/notary-client.log" >&2; exit 1; }

# config TRUST CACHE_DIR: a concil config for one trust configuration.
config() {
    local server
    server=$(jq -n --arg registry "http://$registry" '{registry: $registry}')
    case $1 in
    unsigned) jq -n --arg cache "$2" --arg host "$registry" --argjson server "$server" \
        '{cache_dir: $cache, disable_content_trust: true, remote_servers: {($host): $server}}' ;;
    cosign) jq -n --arg cache "$2" --arg host "$registry" --argjson server "$server" \
        '{cache_dir: $cache, content_trust: "cosign", remote_servers: {($host): $server}}' ;;
    notary) jq -n --arg cache "$2" --arg host "$registry" --argjson server "$server" \
        --arg notary "$notary" \
        '{cache_dir: $cache, content_trust: "notary", remote_servers: {($host): ($server + {notary: $notary})}}' ;;
    esac >"$work/$1/config.json"
}
for trust in "${trusts[@]}"; do config "$trust" "$work/cache-$trust"; done

# Each configuration refuses the unsigned tag (exit status 10: not signed), with a cache of its own.
for trust in cosign notary; do
    config "$trust" "$work/check-$trust"
    status=0
    "$concil" pull --json --config "$work/$trust/config.json" "docker://$registry/$image_repo:unsigned" \
        >/dev/null 2>"$work/refused-$trust.err" || status=$?
    if ((status != 10)); then
        log "$trust did not refuse the unsigned tag as not signed (exit status $status)"
        cat "$work/refused-$trust.err" >&2
        exit 1
    fi
    config "$trust" "$work/cache-$trust"
done

# cpu_seconds FILE: the children's user + sys in the output of bash's `times`.
cpu_seconds() {
    tail -n1 "$1" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); s += p[1] * 60 + p[2] }
        printf "%.4f", s }'
}

# run_timed NAME CMD...: one timed run; appends "wall cpu rss_kib" to $work/NAME unless NAME
# is -. `times` runs in this shell (no subshell), so its difference is this run's CPU alone.
run_timed() {
    local name=$1 status=0 started ended
    shift
    times >"$work/cpu.before"
    started=$EPOCHREALTIME
    /usr/bin/time -f '%M' -o "$work/time" "$@" >"$work/last.out" 2>"$work/last.err" || status=$?
    ended=$EPOCHREALTIME
    times >"$work/cpu.after"
    if ((status != 0)); then
        log "failed (exit status $status): $*"
        cat "$work/last.err" >&2
        exit 1
    fi
    [[ $name == - ]] || awk -v wall="$started $ended" \
        -v cpu="$(cpu_seconds "$work/cpu.before") $(cpu_seconds "$work/cpu.after")" \
        '{ split(wall, w, " "); split(cpu, c, " "); printf "%.4f %.4f %s\n", w[2] - w[1], c[2] - c[1], $1 }' \
        "$work/time" >>"$work/$name"
}

# log_lines: the lengths of the two servers' logs now.
log_lines() { echo "$(wc -l <"$work/registry.log") $(wc -l <"$work/notary.log")"; }

# requests_since LINES NAME: the requests each server answered since log_lines said LINES, as
# "METHOD URI STATUS SERVER_TIME" into $work/requests-{registry,notary}-NAME.
requests_since() {
    local lines
    read -r -a lines <<<"$1"
    sleep 0.3 # a server logs "response completed" after the client may have gone
    # The registry logs logfmt (a value in quotes only when it needs them), notary-server JSON.
    tail -n +$((lines[0] + 1)) "$work/registry.log" |
        sed -n 's/.*msg="response completed[^"]*".* http\.request\.method=\([A-Z]*\).* http\.request\.uri="\{0,1\}\([^" ]*\).* http\.response\.duration="\{0,1\}\([^" ]*\).* http\.response\.status=\([0-9]*\).*/\1 \2 \4 \3/p' \
            >"$work/requests-registry-$2"
    [[ $(tail -n +$((lines[0] + 1)) "$work/registry.log" | grep -c 'msg="response completed') == \
        "$(wc -l <"$work/requests-registry-$2")" ]] || { log "unparsed registry log lines"; exit 1; }
    tail -n +$((lines[1] + 1)) "$work/notary.log" |
        jq -rR 'fromjson? | select(.msg == "response completed")
            | "\(.["http.request.method"]) \(.["http.request.uri"]) \(.["http.response.status"]) \(.["http.response.duration"])"' \
            >"$work/requests-notary-$2"
}

# pull TRUST STATE ROUND COUNT: one pull with that configuration, recorded as TRUST-STATE
# unless ROUND is 0 (warm-up); with COUNT set its requests are counted and "verified" checked.
declare -A expected_verified=([unsigned]=none [cosign]=cosign [notary]=notary)
pull() {
    local trust=$1 state=$2 name=$1-$2 lines verified
    (($3 == 0)) && name=-
    [[ -n $4 ]] && lines=$(log_lines)
    run_timed "$name" "$concil" pull --json --config "$work/$trust/config.json" \
        "docker://$registry/$image_repo:latest"
    [[ -n $4 ]] || return 0
    requests_since "$lines" "$trust-$state"
    verified=$(jq -r .verified "$work/last.out")
    [[ $verified == "${expected_verified[$trust]}" ]] ||
        { log "$trust pull: verified is $verified, not ${expected_verified[$trust]}"; exit 1; }
}

# One round: cold pulls into emptied caches, then warm_reps times warm pulls, the configurations
# alternating; the floor (/usr/bin/time of /bin/true) beside each. ROUND 0 is the warm-up, whose
# first pulls are counted.
round() {
    local n=$1 trust rep count='' floor=floor
    if ((n == 0)); then count=yes floor=-; fi
    for trust in "${trusts[@]}"; do
        rm -rf "$work/cache-$trust"
        pull "$trust" cold "$n" "$count"
    done
    for rep in $(seq "$warm_reps"); do
        for trust in "${trusts[@]}"; do
            pull "$trust" warm "$n" "$(if ((rep == 1)); then echo "$count"; fi)"
        done
        run_timed "$floor" /bin/true
    done
}

# median FILE COLUMN
median() {
    awk -v c="$2" '{ print $c }' "$1" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# paired A B COLUMN OP: median over rounds (repetitions) of A's value OP B's value in the same
# one; OP is ratio or ms (the difference in milliseconds).
paired() {
    paste -d' ' "$work/$1" "$work/$2" |
        awk -v c="$3" -v op="$4" '{ n = split($0, f, " "); a = f[c]; b = f[n / 2 + c]
            print (op == "ratio") ? (b > 0 ? a / b : "inf") : (a - b) * 1000 }' |
        sort -g | awk -v op="$4" '{ v[NR] = $1 } END {
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf (op == "ratio") ? "%.3f" : "%+.1f", m }'
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
[[ -z ${BENCH_AUTOGROUP_NICE:-} ]] || echo "$BENCH_AUTOGROUP_NICE" >/proc/self/autogroup
log "warm-up round (checks \"verified\", counts requests)"
round 0
for run in $(seq "$runs"); do
    log "round $run of $runs"
    round "$run"
done

results=$bench_dir/trust-results-$(date +%Y%m%d-%H%M%S)
mkdir -p "$results"
cp "$work"/{unsigned,cosign,notary}-{cold,warm} "$work/floor" "$work"/requests-* "$results/"

printf 'machine: %s cores, %s; load average before: %s; CPU pressure (some, avg300): %s%%\n' "$(nproc)" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$load_before" \
    "$(sed -n 's/^some .*avg300=\([0-9.]*\).*/\1/p' /proc/pressure/cpu 2>/dev/null)"
printf 'session autogroup: %s; raw runs in %s\n' "$(cat /proc/self/autogroup 2>/dev/null)" "$results"
printf 'concil built from %s (%s)\n' "$built" "$src"
printf 'image: manifest sha256:%s, one layer of %s bytes (Debian minbase, gzip); ' \
    "$manifest_hex" "$(stat -c %s "$layer_gz")"
printf '%s rounds (cold) and %s warm pulls (%s per round), medians\n' "$runs" \
    "$((runs * warm_reps))" "$warm_reps"
printf 'checked: verified = none / cosign / notary; tag unsigned refused by cosign and notary (exit 10)\n\n'
printf '| pull | trust | wall s | CPU s (user+sys) | peak RSS MiB | wall ratio to unsigned | CPU ratio to unsigned | wall ms over unsigned | CPU ms over unsigned |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for state in cold warm; do
    for trust in "${trusts[@]}"; do
        name=$trust-$state
        if [[ $trust == unsigned ]]; then
            compared=(- - - -)
        else
            compared=("$(paired "$name" "unsigned-$state" 1 ratio)" "$(paired "$name" "unsigned-$state" 2 ratio)"
                "$(paired "$name" "unsigned-$state" 1 ms)" "$(paired "$name" "unsigned-$state" 2 ms)")
        fi
        printf '| %s | %s | %.4f | %.4f | %.1f | %s | %s | %s | %s |\n' "$state" "$trust" \
            "$(median "$work/$name" 1)" "$(median "$work/$name" 2)" \
            "$(awk -v k="$(median "$work/$name" 3)" 'BEGIN { print k / 1024 }')" "${compared[@]}"
    done
done
printf '| floor | /usr/bin/time /bin/true | %.4f | %.4f | %.1f | | | | |\n' "$(median "$work/floor" 1)" \
    "$(median "$work/floor" 2)" "$(awk -v k="$(median "$work/floor" 3)" 'BEGIN { print k / 1024 }')"

printf '\nHTTP requests per pull (warm-up round; "response completed" lines):\n\n'
printf '| pull | trust | registry | notary-server | requests minus unsigned |\n|---|---|---|---|---|\n'
for state in cold warm; do
    base=$(wc -l <"$work/requests-registry-unsigned-$state")
    for trust in "${trusts[@]}"; do
        registry_count=$(wc -l <"$work/requests-registry-$trust-$state")
        notary_count=$(wc -l <"$work/requests-notary-$trust-$state")
        printf '| %s | %s | %s | %s | %+d |\n' "$state" "$trust" "$registry_count" "$notary_count" \
            "$((registry_count + notary_count - base))"
    done
done
for trust in "${trusts[@]}"; do
    printf '\nwarm %s:\n' "$trust"
    sed 's/^/  registry /' "$work/requests-registry-$trust-warm"
    sed 's/^/  notary   /' "$work/requests-notary-$trust-warm"
done
printf '\nload average after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
