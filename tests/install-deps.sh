#!/bin/bash
# Installs what the build and the tests need on a fresh Debian 12 machine (as root).
# Quick when everything is there already: apt runs only for what is missing.
set -euo pipefail

packages=(runc podman docker.io umockdev udev libudev-dev pkg-config busybox-static bpftool hyperfine rpm)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "install-deps: missing packages (${missing[*]}); run as root" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${missing[@]}"   # with recommends, as verified in the platform notes
fi
for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" || true
done
