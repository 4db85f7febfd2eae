#!/bin/bash
# Installs what the build and the tests need on a fresh Debian 12 machine (as root).
# Quick when everything is there already: apt runs only for what is missing.
set -euo pipefail

packages=(runc podman docker.io umockdev udev libudev-dev pkg-config busybox-static bpftool hyperfine rpm jq binutils)
# The systemd + cgroup v2 VMs (tests/vm): debootstrap builds their root filesystems, qemu boots
# them; protoc builds the CRI client (tests/cri-client) the VM suite drives containerd with.
vm_packages=(debootstrap qemu-system-x86 qemu-utils e2fsprogs protobuf-compiler)

missing() {
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}
mapfile -t missing < <(missing "${packages[@]}")
mapfile -t vm_missing < <(missing "${vm_packages[@]}")
if [ ${#missing[@]} -gt 0 ] || [ ${#vm_missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "install-deps: missing packages (${missing[*]} ${vm_missing[*]}); run as root" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]} ${vm_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get install -y -q "${missing[@]}"   # with recommends, as verified in the platform notes
    fi
    if [ ${#vm_missing[@]} -gt 0 ]; then
        apt-get install -y -q --no-install-recommends "${vm_missing[@]}"
    fi
fi
for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" || true
done
