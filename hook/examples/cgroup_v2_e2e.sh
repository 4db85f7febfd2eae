#!/bin/sh
# Proves hook/src/cgroup/v2 on the running kernel with a real runc container
# on cgroup v2. Needs root, runc, bpftool, busybox (static), util-linux.
#
#   sudo sh hook/examples/cgroup_v2_e2e.sh
#
# Hybrid-cgroup hosts: runs everything in a private mount namespace with
# cgroup2 mounted on /sys/fs/cgroup, so runc takes its cgroup v2 path. The
# host's mounts and cgroups stay as they were (the container is deleted at
# the end).
set -eu

[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
for t in runc bpftool busybox unshare; do
    command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --quiet --manifest-path "$ROOT/Cargo.toml" -p amd-container-hook --example cgroup_v2_e2e
BIN=$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/examples/cgroup_v2_e2e

WORK=$(mktemp -d /tmp/cgv2-e2e.XXXXXX)
ID=cgv2-e2e-$$
trap 'runc delete -f "$ID" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

# Bundle: static busybox; device nodes made on the host and bind-mounted in
# (the container's /dev is runc's tmpfs). 226:128 = a DRM render node with no
# driver on this host; 226:129 = a neighbour that must stay denied.
mkdir -p "$WORK/b/rootfs/bin" "$WORK/nodes"
cp "$(command -v busybox)" "$WORK/b/rootfs/bin/busybox"
for a in sh cat sleep echo; do ln -s busybox "$WORK/b/rootfs/bin/$a"; done
mknod "$WORK/nodes/render" c 226 128
mknod "$WORK/nodes/other" c 226 129
(cd "$WORK/b" && runc spec)
"$BIN" prepare "$WORK/b/config.json" "$WORK/nodes"

export BIN WORK ID
unshare -m sh -eu -c '
    umount -l /sys/fs/cgroup
    mount -t cgroup2 none /sys/fs/cgroup
    runc run -d --bundle "$WORK/b" "$ID" </dev/null >/dev/null 2>&1
    "$BIN" check "$ID" "$WORK/b/config.json"
'
