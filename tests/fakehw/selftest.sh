#!/bin/bash
# Self-test of the fake-hardware namespace: for cgroup v1 and v2, run a busybox runc container
# inside run-in-fakehw.sh, check the fake nodes and the device oracle, check that libudev
# (udevadm) sees the fake drm devices, and check that the host's /dev and /sys are unchanged.
#
#   selftest.sh [FIXTURE]      (default: tests/fixtures/radeon.umockdev)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fixture=${1:-$here/../fixtures/radeon.umockdev}
work=$(mktemp -d /tmp/fakehw-selftest.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

host_dev_before=$(ls /dev | sort | sha256sum)
host_sys_before=$(stat -f -c %T /sys)

"$here/make-bundle.sh" "$work/bundle" sh -c \
    'cat /dev/kfd 2>&1; cat /dev/dri/renderD128 2>&1; echo container-ok' >/dev/null
# give the container kfd + renderD128 nodes; cgroup allows kfd only
jq '.linux.devices=[{"path":"/dev/kfd","type":"c","major":238,"minor":0,"fileMode":438},
      {"path":"/dev/dri/renderD128","type":"c","major":226,"minor":128,"fileMode":438}]
    | .linux.resources.devices += [{"allow":true,"type":"c","major":238,"minor":0,"access":"rwm"}]' \
    "$work/bundle/config.json" > "$work/c.json" && mv "$work/c.json" "$work/bundle/config.json"

for cg in v1 v2; do
    out=$("$here/run-in-fakehw.sh" --fixture "$fixture" --cgroup "$cg" --workdir "$work/fhw" -- \
        sh -c 'ls -l /dev/dri /dev/kfd
               SYSTEMD_DEVICE_VERIFY_SYSFS=0 udevadm info --export-db | grep "^N:"
               cd "$0" && runc run "fakehw-selftest-$$"' "$work/bundle")
    echo "--- cgroup $cg"
    echo "$out"
    grep -q 'crw-rw----.*video.*226, *1 .*card1' <<<"$out" || fail "$cg: /dev/dri/card1"
    grep -q 'crw-rw-rw-.*render.*226, *128 .*renderD128' <<<"$out" || fail "$cg: renderD128"
    grep -q 'crw-rw-rw-.*238, *0 .*/dev/kfd' <<<"$out" || fail "$cg: /dev/kfd"
    grep -q '^N: dri/renderD128' <<<"$out" || fail "$cg: udevadm does not see renderD128"
    grep -q "kfd.*No such device or address" <<<"$out" || fail "$cg: kfd oracle"
    grep -q "renderD128.*Operation not permitted" <<<"$out" || fail "$cg: renderD128 oracle"
    grep -q container-ok <<<"$out" || fail "$cg: container did not run"
done

set +e
"$here/run-in-fakehw.sh" --fixture "$fixture" --cgroup v1 --workdir "$work/fhw" -- sh -c 'exit 42'
rc=$?
set -e
[ "$rc" = 42 ] || fail "exit status not propagated ($rc)"

[ ! -e /dev/dri ] || [ -n "${FAKEHW_ALLOW_HOST_DRI:-}" ] || fail "host has /dev/dri"
[ "$(ls /dev | sort | sha256sum)" = "$host_dev_before" ] || fail "host /dev changed"
[ "$(stat -f -c %T /sys)" = "$host_sys_before" ] || fail "host /sys changed"
echo "PASS: runc v1+v2, fake nodes, udevadm, oracle, exit status, host untouched"
