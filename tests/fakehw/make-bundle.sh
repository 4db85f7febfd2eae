#!/bin/bash
# Make an OCI bundle with a static busybox rootfs.
#
#   make-bundle.sh DIR [ARG...]
#
# Creates DIR/rootfs (busybox + one symlink per applet in /bin, plus /dev /proc /sys /tmp /etc)
# and DIR/config.json from `runc spec` with process.terminal=false and process.args=ARG...
# (default: sh -c 'ls -l /dev').  Re-running refreshes config.json and keeps the rootfs.
# The same rootfs can be imported as an image:
#   tar -C DIR/rootfs -c . | podman import - localhost/bb:test     (or docker import - bb:test)
set -euo pipefail

die() { echo "make-bundle: error: $*" >&2; exit 1; }
[ $# -ge 1 ] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
dir=$1
shift
[ $# -gt 0 ] || set -- sh -c 'ls -l /dev'

command -v runc >/dev/null || die "runc not found (apt-get install runc)"
command -v python3 >/dev/null || die "python3 not found"
bb=${BUSYBOX:-$(command -v busybox || true)}
[ -n "$bb" ] || die "busybox not found (apt-get install busybox-static)"
bb=$(readlink -f "$bb")
if command -v ldd >/dev/null && ldd "$bb" >/dev/null 2>&1; then
    die "$bb is dynamically linked; install busybox-static or set BUSYBOX=/path/to/static/busybox"
fi

mkdir -p "$dir"
dir=$(readlink -f "$dir")
rootfs=$dir/rootfs
if [ ! -x "$rootfs/bin/busybox" ]; then
    mkdir -p "$rootfs/bin" "$rootfs/dev" "$rootfs/proc" "$rootfs/sys" "$rootfs/tmp" \
        "$rootfs/etc" "$rootfs/root"
    cp "$bb" "$rootfs/bin/busybox"
    for applet in $("$bb" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
    printf 'root:x:0:\nvideo:x:44:\nrender:x:109:\n' > "$rootfs/etc/group"
fi

rm -f "$dir/config.json"
(cd "$dir" && runc spec)
python3 - "$dir/config.json" "$@" <<'EOF'
import json, sys
path, args = sys.argv[1], sys.argv[2:]
with open(path) as f:
    cfg = json.load(f)
cfg["process"]["terminal"] = False
cfg["process"]["args"] = args
with open(path, "w") as f:
    json.dump(cfg, f, indent=2)
    f.write("\n")
EOF
echo "bundle: $dir (args: $*)"
