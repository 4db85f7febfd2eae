#!/bin/bash
# Builds (or reuses) the root filesystem of one test VM image with debootstrap.
#
#   build-rootfs.sh IMAGE      (IMAGE: trixie = Debian 13, sid = Debian unstable; packages-IMAGE.txt)
#
# Contract: prints the path of a finished root filesystem directory on stdout and exits 0, or exits
# non-zero with debootstrap's log on stderr. The directory is cached under $AMD_CTK_VM_CACHE
# (default: <repo>/target/vm) keyed on the image's package list and this script, so a second run is
# instant and never downloads; each image has its own cache entry. Downloads happen here only, never
# while a test runs. Needs root and debootstrap.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${AMD_CTK_VM_CACHE:-$repo/target/vm}
image=${1:?usage: build-rootfs.sh IMAGE (trixie or sid)}
list=$here/packages-$image.txt
[ -f "$list" ] || { echo "build-rootfs: no image '$image': no $list (images: $(cd "$here" && ls packages-*.txt | sed 's/packages-//; s/\.txt//' | paste -sd' '))" >&2; exit 1; }
suite=$image
mirror=${AMD_CTK_VM_MIRROR:-http://deb.debian.org/debian}

packages=$(grep -v '^\s*#' "$list" | grep -v '^\s*$' | sort | paste -sd, -)
key=$( (echo "$suite $mirror $packages"; cat "$here/build-rootfs.sh") | sha256sum | cut -c1-16)
dir=$cache/rootfs-$image-$key
if [ -f "$dir/.complete" ]; then
    echo "$dir"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "build-rootfs: needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "build-rootfs: debootstrap missing (tests/install-deps.sh)" >&2; exit 1; }

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/tmp-rootfs-$image.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log=$cache/debootstrap-$image-$key.log
echo "build-rootfs: debootstrap $suite into $tmp (a few minutes, once per package list)" >&2
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$tmp/root" "$mirror" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    [ -f "$tmp/root/debootstrap/debootstrap.log" ] && tail -n 40 "$tmp/root/debootstrap/debootstrap.log" >&2
    exit 1
fi
root=$tmp/root
chroot "$root" passwd -d root >/dev/null
echo '/dev/vda / ext4 rw 0 1' > "$root/etc/fstab"
echo amd-ctk-vm > "$root/etc/hostname"
# Nothing in the VM may try the network or wait for it.
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer systemd-networkd-wait-online.service \
    getty@tty1.service serial-getty@ttyS0.service >/dev/null 2>&1 || true
# The engines start when a test asks for them, not at boot.
chroot "$root" systemctl disable docker.service docker.socket containerd.service >/dev/null 2>&1 || true
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"* 2>/dev/null || true
touch "$root/.complete"
rm -rf "$dir"
mv "$root" "$dir"
# Older builds of this image's other package lists are of no further use.
for old in "$cache"/rootfs-"$image"-*; do
    [ "$old" = "$dir" ] || [ ! -d "$old" ] || rm -rf "$old"
done
echo "$dir"
