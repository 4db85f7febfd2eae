#!/bin/bash
# The toolkit at work on a machine without an AMD GPU (`make demo`, which first runs
# tests/install-deps.sh and `cargo build --release`).
#
#   tests/demo.sh [FIXTURE]       (default: tests/fixtures/mi300x-8.umockdev; root only)
#   DEMO_CGROUP=v1|v2             (default: v2 on a unified-cgroup host, else v1)
#
# 1. amd-ctk gpu list / cdi list on a fake GPU machine (umockdev fixture).
# 2. Two real busybox containers under runc, inside the fake-hardware mount namespace
#    (tests/fakehw/run-in-fakehw.sh), with amd-container-hook registered as prestart hook:
#    one with AMD_VISIBLE_DEVICES=0, one without.
# Everything lives in a temp dir that is removed at the end; the host is left as it was.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
fixture=$(readlink -f "${1:-$repo/tests/fixtures/mi300x-8.umockdev}")
bin=$(readlink -f "${CARGO_TARGET_DIR:-$repo/target}")/release
start=$(date +%s%N)

die() { echo "demo: error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (mount namespace, mknod, runc)"
[ -f "$fixture" ] || die "fixture not found: $fixture"
for b in amd-ctk amd-container-hook; do
    [ -x "$bin/$b" ] || die "$bin/$b missing: run 'make demo' (or 'make build')"
done
for t in umockdev-run runc busybox unshare; do
    command -v "$t" >/dev/null || die "$t not found: run 'make demo' (it runs tests/install-deps.sh)"
done
if ! command -v python3 >/dev/null; then   # make-bundle.sh edits config.json with it
    echo "demo: installing python3"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends python3 >/dev/null
fi

tmp=$(mktemp -d /tmp/amd-ctk-demo.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
host_dev=$(ls -A /dev | sha256sum)
host_log=$( [ -e /var/log/amd-container-hook.log ] && echo present || echo absent )
# The host's cgroup layout: a unified (v2-only) host has no v1 devices controller.
cgroup=${DEMO_CGROUP:-v1}
[ -n "${DEMO_CGROUP:-}" ] || [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ] || cgroup=v2

h() { printf '\n== %s\n' "$*"; }

h "Fake hardware: $(basename "$fixture") (umockdev; no AMD GPU or driver on this host)"
echo "\$ amd-ctk gpu list"
umockdev-run -d "$fixture" -- "$bin/amd-ctk" gpu list
echo
echo "\$ amd-ctk cdi list"
umockdev-run -d "$fixture" -- "$bin/amd-ctk" cdi list

# One busybox rootfs, two bundles. The probe prints what it runs, then the nodes it sees and
# what opening them gives.
probe='for c in "ls -l /dev/dri /dev/kfd" "cat /dev/kfd" "cat /dev/dri/renderD128" "cat /dev/dri/renderD129"; do
    echo "# $c"; $c 2>&1 | sed "/^$/d; s/^/  /"; done'
"$repo/tests/fakehw/make-bundle.sh" "$tmp/gpu" sh -c "$probe" >/dev/null
mkdir -p "$tmp/plain"
printf '[hook]\nlog-file = "%s"\n' "$tmp/hook.log" > "$tmp/config.toml"
python3 - "$tmp" "$bin/amd-container-hook" <<'EOF'
import json, sys
tmp, hook = sys.argv[1:]
path = tmp + "/gpu/config.json"
c = json.load(open(path))
# The hook as Podman / CRI-O would run it from /usr/share/containers/oci/hooks.d, plus what
# the fake /sys needs (libudev) and a config whose log file is in the temp dir.
c["hooks"] = {"prestart": [{"path": hook, "args": ["amd-container-hook", "prestart"],
                            "env": ["SYSTEMD_DEVICE_VERIFY_SYSFS=0",
                                    "AMD_CTK_CONFIG=" + tmp + "/config.toml"]}]}
c["root"]["path"] = tmp + "/gpu/rootfs"
json.dump(c, open(tmp + "/plain/config.json", "w"), indent=2)
c["process"]["env"].append("AMD_VISIBLE_DEVICES=0")
json.dump(c, open(path, "w"), indent=2)
EOF

h "Containers (runc $(runc --version | awk 'NR==1{print $3}'), cgroup $cgroup, hook as prestart)"
echo "Reading the access check: 'No such device or address' = the node is there and the device"
echo "cgroup allows it (no driver behind it on this host); 'No such file or directory' = no node."
"$repo/tests/fakehw/run-in-fakehw.sh" --fixture "$fixture" --cgroup "$cgroup" \
    --workdir "$tmp/fakehw" -- sh -c '
        set -e
        printf "\n== Container with AMD_VISIBLE_DEVICES=0\n"
        cd "$1/gpu" && runc --root "$1/runc" run "amd-ctk-demo-gpu-$$"
        printf "\n== Container without AMD_VISIBLE_DEVICES\n"
        cd "$1/plain" && runc --root "$1/runc" run "amd-ctk-demo-plain-$$"
    ' sh "$tmp"

h "Hook log (hook.log-file in the demo's config)"
sed 's/^/  /' "$tmp/hook.log"

# The host is as it was: no new /dev nodes, no hook log in /var/log.
[ "$(ls -A /dev | sha256sum)" = "$host_dev" ] || die "the host's /dev changed"
[ "$host_log" = present ] || [ ! -e /var/log/amd-container-hook.log ] || die "/var/log/amd-container-hook.log appeared"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
h "Done in $((ms / 1000)).$((ms % 1000 / 100))s; the host is unchanged and the temp dir is removed"
