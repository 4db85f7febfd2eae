#!/bin/bash
# Fills a payload directory for run-vm.sh: the release binaries, the fake hardware of one fixture
# (its umockdev sysfs tree as a tarball and its device nodes), the VM suite, and the udev rule and
# systemd unit of the packages.
#
#   make-payload.sh OUT_DIR [FIXTURE]      (FIXTURE default: tests/fixtures/mi300x-8.umockdev)
#
# Needs umockdev-run (to unpack the fixture's sysfs tree) and `cargo build --release` done;
# AMD_CTK_BIN_DIR overrides target/release.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$1
fixture=${2:-$repo/tests/fixtures/mi300x-8.umockdev}
bin=${AMD_CTK_BIN_DIR:-$repo/target/release}
die() { echo "make-payload: $*" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/bin" "$out/sysfs"
for b in amd-ctk amd-container-hook amd-container-runtime; do
    [ -x "$bin/$b" ] || die "$bin/$b is not built (cargo build --release)"
    cp "$bin/$b" "$out/bin/"
done
# The CRI client the Kubernetes tests drive containerd with (tests/cri-client, built with the workspace).
[ -x "$bin/amd-ctk-cri-client" ] || die "$bin/amd-ctk-cri-client is not built (cargo build --release --workspace)"
cp "$bin/amd-ctk-cri-client" "$out/bin/"
cp "$here/suite.sh" "$here/lib.sh" "$here/cdi-refresh.sh" "$here/cri.sh" "$here/rootless.sh" "$out/"
# The udev rule and unit the packages install (the CDI refresh test installs them the same way).
mkdir -p "$out/packaging"
cp "$repo/packaging/udev/60-amd-container-toolkit-cdi.rules" "$repo/packaging/systemd/amd-cdi-refresh.service" \
    "$out/packaging/"
cp -r "$repo/oci-hooks.d" "$out/"

# shellcheck disable=SC2016
umockdev-run -d "$fixture" -- sh -c 'cp -a "$UMOCKDEV_DIR/sys" "$1/sys"' sh "$out/sysfs" \
    || die "umockdev-run could not load $fixture"
tar -C "$out/sysfs" -cf "$out/sysfs.tar" sys
rm -rf "$out/sysfs"
# The fixture's device nodes: "NAME MAJOR MINOR", from each block's N: line and dev attribute.
awk -f "$here/../fakehw/fixture-nodes.awk" "$fixture" > "$out/nodes"
basename "$fixture" .umockdev > "$out/fixture-name"
