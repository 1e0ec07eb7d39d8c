#!/usr/bin/env bash
# Regenerates the Notary v1 (Docker Content Trust) test vectors in
# crates/concil/src/trust/notary/vectors/: real TUF metadata as served by Debian's notary-server,
# signed by the real `notary` client 0.7 (and by the server or notary-signer for timestamps),
# one directory per key type or feature, and its README.md (which key signed what).
#
# Starts notary-server (and once notary-signer) on free 127.0.0.1 ports with memory storage,
# stops them by PID on exit. Needs notary (Debian package `notary`), openssl, curl, jq, python3.
# Usage: scripts/notary-vectors.sh   (replaces the whole vectors directory)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$repo/crates/concil/src/trust/notary/vectors
work=$(mktemp -d)
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

log() { printf 'notary-vectors: %s\n' "$*" >&2; }

# This machine exports CA bundles that some tools prefer to their own CA options.
unset CURL_CA_BUNDLE REQUESTS_CA_BUNDLE SSL_CERT_FILE

export NOTARY_ROOT_PASSPHRASE="concil test root passphrase"
export NOTARY_TARGETS_PASSPHRASE="concil test targets passphrase"
export NOTARY_SNAPSHOT_PASSPHRASE="concil test snapshot passphrase"
export NOTARY_DELEGATION_PASSPHRASE="concil test delegation passphrase"

# The target every set signs: tag v1, a fixed content.
target_content="concil notary test vector target"
target_size=${#target_content}
target_sha256=$(printf '%s' "$target_content" | sha256sum | cut -d' ' -f1)

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# issue NAME SUBJECT EXTENSIONS KEYSPEC...: NAME.key (unencrypted PKCS#8) and NAME.crt signed by the CA,
# valid for 10 years so that certificate checks of the vectors keep passing.
issue() {
    local name=$1 subject=$2 extensions=$3
    shift 3
    openssl req -new -nodes "$@" -keyout "$work/$name.key" -out "$work/$name.csr" \
        -subj "$subject" 2>/dev/null
    printf '%b' "$extensions" >"$work/$name.ext"
    openssl x509 -req -in "$work/$name.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
        -CAcreateserial -days 3650 -out "$work/$name.crt" -extfile "$work/$name.ext" 2>/dev/null
}

ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
rsa=(-newkey rsa:2048)
leaf='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n'

log "test CA, TLS certificate"
openssl req -x509 -new "${ec[@]}" -nodes -keyout "$work/ca.key" -out "$work/ca.crt" -days 3650 \
    -subj "/CN=concil notary vectors CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
issue tls "/CN=127.0.0.1" \
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
    "${ec[@]}"

# start_server NAME [ecdsa]: a notary-server (local ed25519 timestamps, or ecdsa ones from a
# notary-signer); sets $server_url.
start_server() {
    local name=$1 timestamp=${2:-ed25519} port trust_service
    trust_service='{"type": "local"}'
    if [[ $timestamp == ecdsa ]]; then
        local signer_port
        signer_port=$(free_port)
        cat >"$work/$name-signer.json" <<EOF
{"server": {"grpc_addr": "127.0.0.1:$signer_port", "tls_cert_file": "$work/tls.crt", "tls_key_file": "$work/tls.key"},
 "storage": {"backend": "memory"}, "logging": {"level": "info"}}
EOF
        setsid notary-signer -config "$work/$name-signer.json" >"$work/$name-signer.log" 2>&1 &
        pids+=($!)
        for _ in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$signer_port") 2>/dev/null && break
            sleep 0.1
        done
        trust_service="{\"type\": \"remote\", \"hostname\": \"127.0.0.1\", \"port\": \"$signer_port\",
                        \"tls_ca_file\": \"$work/ca.crt\", \"key_algorithm\": \"ecdsa\"}"
    fi
    port=$(free_port)
    cat >"$work/$name-server.json" <<EOF
{"server": {"http_addr": "127.0.0.1:$port", "tls_cert_file": "$work/tls.crt", "tls_key_file": "$work/tls.key"},
 "trust_service": $trust_service, "storage": {"backend": "memory"}, "logging": {"level": "info"}}
EOF
    setsid notary-server -config "$work/$name-server.json" >"$work/$name-server.log" 2>&1 &
    pids+=($!)
    server_url=https://127.0.0.1:$port
    for _ in $(seq 100); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/ca.crt" \
            "$server_url/_notary_server/health") == 200 ]] && return 0
        sleep 0.1
    done
    log "notary-server $name did not start:"
    cat "$work/$name-server.log" >&2
    exit 1
}

# notary_client SET ARGS...: the notary CLI with the set's own trust dir, against $server_url.
notary_client() {
    local set=$1
    shift
    notary -s "$server_url" --tlscacert "$work/ca.crt" -d "$work/trust-$set" "$@" >&2
}

# fetch GUN ROLE FILE: the metadata as served.
fetch() {
    curl -sf --cacert "$work/ca.crt" "$server_url/v2/$1/_trust/tuf/$2.json" -o "$3"
}

# save SET GUN ROLE...: each role's current metadata into SET/ROLE.json.
save() {
    local set=$1 gun=$2 role
    shift 2
    for role in "$@"; do
        mkdir -p "$(dirname "$out.new/$set/$role.json")"
        fetch "$gun" "$role" "$out.new/$set/$role.json"
    done
}

gun_of() { echo "registry.example:5000/vectors/$1"; }

rm -rf "$out.new"
mkdir -p "$out.new"

log "ecdsa-root: default init, ed25519 timestamp"
start_server default
gun=$(gun_of ecdsa-root)
notary_client ecdsa-root init "$gun"
notary_client ecdsa-root addhash "$gun" v1 "$target_size" --sha256 "$target_sha256"
notary_client ecdsa-root publish "$gun"
save ecdsa-root "$gun" root targets snapshot timestamp

log "rsa-root: RSA root key, certificate from the vectors CA"
gun=$(gun_of rsa-root)
issue rsa-root "/CN=${gun//\//\\/}" "$leaf" "${rsa[@]}"
# notary imports only encrypted root keys, and only with the PBKDF2-HMAC-SHA1 PRF.
openssl pkcs8 -topk8 -in "$work/rsa-root.key" -out "$work/rsa-root.enc.key" -v2 aes-256-cbc \
    -v2prf hmacWithSHA1 -passout "pass:$NOTARY_ROOT_PASSPHRASE"
notary_client rsa-root init "$gun" --rootkey "$work/rsa-root.enc.key" --rootcert "$work/rsa-root.crt"
notary_client rsa-root addhash "$gun" v1 "$target_size" --sha256 "$target_sha256"
notary_client rsa-root publish "$gun"
save rsa-root "$gun" root targets snapshot timestamp
cp "$work/ca.crt" "$out.new/rsa-root/ca.crt"

log "delegation: targets/releases with an ecdsa-x509 and an rsa-x509 key"
gun=$(gun_of delegation)
issue alice "/CN=alice" "$leaf" "${ec[@]}"
issue bob "/CN=bob" "$leaf" "${rsa[@]}"
notary_client delegation init "$gun"
notary_client delegation publish "$gun"
notary_client delegation delegation add "$gun" targets/releases "$work/alice.crt" "$work/bob.crt" \
    --all-paths --publish
notary_client delegation key import "$work/alice.key" --role targets/releases --gun "$gun"
notary_client delegation key import "$work/bob.key" --role targets/releases --gun "$gun"
notary_client delegation addhash "$gun" v1 "$target_size" --sha256 "$target_sha256" \
    --roles targets/releases
notary_client delegation publish "$gun"
save delegation "$gun" root targets targets/releases snapshot timestamp

log "root-rotation: root key rotated once"
gun=$(gun_of root-rotation)
notary_client root-rotation init "$gun"
notary_client root-rotation addhash "$gun" v1 "$target_size" --sha256 "$target_sha256"
notary_client root-rotation publish "$gun"
echo yes | notary_client root-rotation key rotate "$gun" root
save root-rotation "$gun" 1.root 2.root targets snapshot timestamp

log "ecdsa-timestamp: timestamps from notary-signer"
start_server signer ecdsa
gun=$(gun_of ecdsa-timestamp)
notary_client ecdsa-timestamp init "$gun"
notary_client ecdsa-timestamp addhash "$gun" v1 "$target_size" --sha256 "$target_sha256"
notary_client ecdsa-timestamp publish "$gun"
save ecdsa-timestamp "$gun" root targets snapshot timestamp

# describe SET: one table row per metadata file of the set: its role, and for each signature
# the key ID, the key's type (looked up in every root and delegation key list of the set) and
# the method.
describe() {
    local set=$1 file
    local keys
    keys=$(find "$out.new/$set" -name '*.json' -print0 | sort -z | xargs -0 \
        jq -s '[.[] | (.signed.keys // {}), (.signed.delegations.keys // {})] | add')
    (cd "$out.new/$set" && find . -name '*.json' | sort) | while read -r file; do
        file=${file#./}
        jq -r --arg file "$set/$file" --argjson keys "$keys" '
            "| `\($file)` | \(.signed._type) v\(.signed.version) | " +
            ([.signatures[] | "`\(.keyid)` \($keys[.keyid].keytype // "?") / \(.method)"]
             | join("<br>")) + " |"' "$out.new/$set/$file"
    done
}

log "README.md"
{
    cat <<EOF
# Notary v1 test vectors

Real TUF metadata as served by Debian's \`notary-server\` 0.7 (memory storage), published by the
real \`notary\` client 0.7: data files only, for unit tests of every key type and signature
method of Docker Content Trust. Made by \`scripts/notary-vectors.sh\` (which rewrites this
directory and this file) on $(date -u +%Y-%m-%dT%H:%M:%SZ).

- Every set signs one target, tag \`v1\`: length $target_size, sha256
  \`$target_sha256\` (the bytes \`$target_content\`).
- The GUN of set \`SET\` is \`registry.example:5000/vectors/SET\`.
- Files hold the bytes exactly as served; signatures cover the canonical JSON of \`signed\`
  (sorted keys, no whitespace), which the files contain verbatim.
- Expiry: timestamps expire 14 days after generation, snapshot and targets after 3 years, root
  after 10 years; verify with a fixed "now" (the generation time above).
- Passphrases (for regeneration only, no private key is kept): \`NOTARY_*_PASSPHRASE\` in the
  script.

Sets:

- \`ecdsa-root/\`: \`notary init\` defaults: root \`ecdsa-x509\` (self-signed certificate made by
  notary), targets and snapshot \`ecdsa\` (P-256, raw 64-byte r‖s over SHA-256), timestamp \`ed25519\` by the
  server's local trust service (method \`eddsa\`).
- \`rsa-root/\`: root \`rsa-x509\` (RSA 2048, method \`rsapss\`: PSS, SHA-256, MGF1-SHA-256, salt 32 bytes), its certificate
  (CN = GUN) issued by \`ca.crt\` (the vectors CA, EC P-256, for trust pinning by CA).
- \`ecdsa-timestamp/\`: timestamp key \`ecdsa\` from a \`notary-signer\` (\`key_algorithm: ecdsa\`).
- \`delegation/\`: \`targets.json\` delegates \`targets/releases\` (all paths, threshold 1) to an
  \`ecdsa-x509\` key (alice) and an \`rsa-x509\` key (bob), both certificates from the vectors CA;
  \`targets/releases.json\` holds \`v1\` and is signed by both.
- \`root-rotation/\`: \`notary key rotate GUN root\`: \`2.root.json\` is signed by the old root key
  (listed in \`1.root.json\`) and the new one.

Not possible with the real server: an \`rsa\` timestamp key (notary-server's local trust service
is always ed25519 and notary-signer refuses \`rsa\`: "CreateKey: unsupported algorithm: rsa").

| File | Role | Signatures: key ID, key type / method |
|---|---|---|
EOF
    for set in ecdsa-root rsa-root ecdsa-timestamp delegation root-rotation; do
        describe "$set"
    done
} >"$out.new/README.md"

rm -rf "$out"
mv "$out.new" "$out"
log "wrote $out ($(du -sh "$out" | cut -f1))"
