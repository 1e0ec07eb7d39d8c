#!/usr/bin/env bash
# Installs the Debian 12 packages concil's tests, fixtures and benchmarks run. Idempotent and
# quick when everything is there: apt is only touched for packages that are missing.
# Needs root (or sudo) when something is missing.
set -euo pipefail

packages=(
    # real peers the tests start and the tools that build and push images
    docker-registry notary skopeo umoci apache2-utils openssl
    # an HTTP proxy for the proxy tests (they start their own tinyproxy on 127.0.0.1)
    tinyproxy
    # cluster nodes as processes in their own namespaces (tests/cluster_nodes.rs): unshare and
    # mount (util-linux), ip, and socat to reach the registries from inside
    util-linux mount iproute2 socat
    # a real Docker credential helper (docker-credential-pass) and the store it runs on
    golang-docker-credential-helpers pass gnupg
    # reading and writing squashfs, compressors, JSON
    squashfs-tools-ng squashfs-tools zstd pigz gzip jq
    # test content: a tiny rootfs, a Debian rootfs (scripts/fixtures.sh), user xattrs
    busybox-static debootstrap attr tar
    # benchmarks (scripts/bench-*.sh time runs with /usr/bin/time and hyperfine)
    hyperfine time
    # building: a C compiler and libc headers for zstd-sys
    gcc libc6-dev curl ca-certificates
    # the sigstore crate (an independent cosign signer for the trust tests) links OpenSSL
    libssl-dev pkg-config
    # concil 1.0 (Python, from PyPI) for the cache-compatibility tests and the benchmarks
    python3-venv
)

missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$package")
done
install_concil1() {
    # concil 1.0 imports python-dateutil without declaring it.
    local venv=${CONCIL1_VENV:-/var/tmp/concil1-venv}
    if ! "$venv/bin/python" -c 'import concil.store, dateutil' 2>/dev/null; then
        echo "install-deps: concil 1.0 into $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q concil==1.0.0 python-dateutil </dev/null
    fi
}

if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#packages[@]} packages installed" >&2
    install_concil1
    exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo=()
((EUID == 0)) || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q </dev/null
"${sudo[@]}" apt-get install -y -q "${missing[@]}" </dev/null

# Debian starts docker-registry.service (port 5000 on every interface) and tinyproxy.service
# (port 8888) on install, with configs the tests do not use (they start their own on 127.0.0.1).
# Stop and disable what we just installed. Without systemd as init (a container) there is
# nothing to stop, and systemctl fails.
if [[ -d /run/systemd/system ]]; then
    for service in docker-registry tinyproxy; do
        if [[ " ${missing[*]} " == *" $service "* ]] &&
            systemctl is-enabled --quiet "$service" 2>/dev/null; then
            "${sudo[@]}" systemctl disable --now "$service"
        fi
    done
fi
install_concil1
