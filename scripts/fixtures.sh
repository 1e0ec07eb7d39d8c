#!/usr/bin/env bash
# Builds the large test and benchmark inputs for tarsquash, once, into a cache directory:
#
#   $CONCIL_FIXTURES (default /var/tmp/concil-fixtures)/
#     debian/rootfs.tar{,.gz,.zst}   debootstrap --variant=minbase bookworm, tarred with xattrs
#     small/files.tar{,.gz}          ~50k small files of varied sizes in nested directories
#
# Each artefact is written under a temporary name and renamed when complete, so an interrupted
# run never leaves a truncated fixture behind; finished artefacts are not rebuilt.
# Needs root (debootstrap), debootstrap, GNU tar, pigz (or gzip), zstd and perl.
# Usage: scripts/fixtures.sh [debian|small|all]   (default all)
set -euo pipefail

fixtures=${CONCIL_FIXTURES:-/var/tmp/concil-fixtures}
what=${1:-all}
gzip_cmd=$(command -v pigz || command -v gzip)

log() { printf 'fixtures: %s\n' "$*" >&2; }

# compress SRC DST CMD...: DST from SRC through CMD, atomically.
compress() {
    local src=$1 dst=$2
    shift 2
    [[ -s $dst ]] && return 0
    "$@" <"$src" >"$dst.part"
    mv "$dst.part" "$dst"
}

# The Debian mirror apt is already configured with (first `deb` URI of the main archive).
apt_mirror() {
    local uri
    uri=$(grep -rhoE '^(URIs:[[:space:]]*|deb[[:space:]]+)[^[:space:]]+/debian/?([[:space:]]|$)' \
        /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | head -n1 | awk '{print $NF}')
    [[ -n $uri ]] || { log "no Debian mirror in /etc/apt/sources.list*; set DEBIAN_MIRROR"; exit 1; }
    echo "${uri%/}"
}

debian() {
    local dir=$fixtures/debian
    mkdir -p "$dir"
    if [[ ! -s $dir/rootfs.tar ]]; then
        local root=$dir/root
        rm -rf "$root"
        log "debootstrap --variant=minbase bookworm (1-3 minutes)"
        debootstrap --variant=minbase bookworm "$root" "${DEBIAN_MIRROR:-$(apt_mirror)}" \
            >"$dir/debootstrap.log" 2>&1 || {
            tail -20 "$dir/debootstrap.log" >&2
            exit 1
        }
        # The apt caches hold only downloaded .debs; a container image would not ship them.
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*_Packages
        tar --numeric-owner --xattrs -C "$root" -cf "$dir/rootfs.tar.part" .
        mv "$dir/rootfs.tar.part" "$dir/rootfs.tar"
        rm -rf "$root"
    fi
    compress "$dir/rootfs.tar" "$dir/rootfs.tar.gz" "$gzip_cmd" -n -6
    compress "$dir/rootfs.tar" "$dir/rootfs.tar.zst" zstd -q -3 -T0
    log "debian: $(du -h "$dir/rootfs.tar" | cut -f1) $dir/rootfs.tar"
}

small() {
    local dir=$fixtures/small
    mkdir -p "$dir"
    if [[ ! -s $dir/files.tar ]]; then
        local tree=$dir/tree
        rm -rf "$tree"
        mkdir -p "$tree"
        log "generating ~50k small files"
        # Deterministic: a fixed xorshift generator picks directories, sizes and contents. Contents
        # are slices of a text pool (compressible) or a noise pool (incompressible), like the
        # mix in real layers; a few files repeat earlier contents exactly (dedup candidates).
        perl -e '
            use strict; use warnings;
            my $root = shift;
            my $s = 0x2545F491;
            sub rnd { $s ^= ($s << 13) & 0xFFFFFFFF; $s ^= $s >> 17; $s ^= ($s << 5) & 0xFFFFFFFF; return $s; }
            my @words = qw(lib usr share doc locale python module import return function static
                const struct include define version license copyright the and for with from
                value string error config install package debian build system file path data);
            my $text = "";
            while (length($text) < (1 << 21)) {
                my $line = join(" ", map { $words[rnd() % @words] } 1 .. (4 + rnd() % 12));
                $text .= $line . (rnd() % 7 == 0 ? ";\n" : "\n");
            }
            my $noise = "";
            $noise .= pack("V", rnd()) while length($noise) < (1 << 21);
            my @dirs;
            for my $a (0 .. 19) {
                for my $b (0 .. 24) {
                    my $d = sprintf("%s/d%02d/sub%02d", $root, $a, $b);
                    $d .= sprintf("/deep%d", $b % 5) if $b % 3 == 0;
                    push @dirs, $d;
                }
            }
            my @previous;
            for my $i (0 .. 49_999) {
                my $dir = $dirs[rnd() % @dirs];
                system("mkdir", "-p", $dir) == 0 or die "mkdir $dir" unless -d $dir;
                my $r = rnd() % 1000;
                my $size = $r < 50 ? 0
                         : $r < 600 ? rnd() % 2048
                         : $r < 900 ? 2048 + rnd() % 6144
                         : $r < 990 ? 8192 + rnd() % 24576
                         : 32768 + rnd() % 131072;
                my $data;
                if (@previous && rnd() % 50 == 0) {
                    $data = $previous[rnd() % @previous];
                } else {
                    my $pool = (rnd() % 5 == 0) ? \$noise : \$text;
                    my $left = $size;
                    $data = "";
                    while ($left > 0) {
                        my $n = $left < 65536 ? $left : 65536;
                        $data .= substr($$pool, rnd() % ((1 << 21) - $n), $n);
                        $left -= $n;
                    }
                    push @previous, $data if $size < 65536 && @previous < 256;
                }
                my $path = sprintf("%s/f%05d.%s", $dir, $i, (qw(txt so py json conf h))[rnd() % 6]);
                open(my $fh, ">", $path) or die "$path: $!";
                binmode $fh;
                print $fh $data;
                close $fh or die "$path: $!";
            }
        ' "$tree"
        tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner \
            -C "$tree" -cf "$dir/files.tar.part" .
        mv "$dir/files.tar.part" "$dir/files.tar"
        rm -rf "$tree"
    fi
    compress "$dir/files.tar" "$dir/files.tar.gz" "$gzip_cmd" -n -6
    log "small: $(du -h "$dir/files.tar" | cut -f1) $dir/files.tar"
}

case $what in
debian) debian ;;
small) small ;;
all) debian && small ;;
*)
    echo "usage: $0 [debian|small|all]" >&2
    exit 2
    ;;
esac
