#!/bin/bash
# Boots the systemd + cgroup v2 test VM and runs a payload's suite inside it.
#
#   run-vm.sh PAYLOAD_DIR RESULTS_DIR [IMAGE]      (IMAGE: trixie (default) or sid, build-rootfs.sh)
#
# PAYLOAD_DIR holds suite.sh and whatever it needs; it is shared read-only with the VM (9p) and
# suite.sh runs as root after multi-user.target. Its output lands in RESULTS_DIR/suite.log, its
# exit status in RESULTS_DIR/exit-status, the VM's journal in RESULTS_DIR/journal.txt and the
# serial console in RESULTS_DIR/console.log. Exits 0 when the VM ran the suite to the end (whatever
# the suite's status), non-zero when the VM could not be built or booted or timed out.
#
# The base image (IMAGE's packages-IMAGE.txt) is built once and cached beside its root filesystem
# (build-rootfs.sh); each run boots a copy-on-write overlay of it, so runs never see each other's
# state, and runs of different images may go on at the same time. No network inside the VM. Needs root, qemu-system-x86_64, mkfs.ext4.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${AMD_CTK_VM_CACHE:-$repo/target/vm}
timeout_s=${AMD_CTK_VM_TIMEOUT:-1500}
die() { echo "run-vm: $*" >&2; exit 1; }

[ $# = 2 ] || [ $# = 3 ] || die "usage: run-vm.sh PAYLOAD_DIR RESULTS_DIR [IMAGE]"
payload=$(readlink -f "$1")
results=$(readlink -f "$2")
image=${3:-trixie}
[ -f "$payload/suite.sh" ] || die "no suite.sh in $payload"
mkdir -p "$results"
for tool in qemu-system-x86_64 qemu-img mkfs.ext4; do
    command -v "$tool" >/dev/null || die "$tool missing (tests/install-deps.sh)"
done

rootfs=$("$here/build-rootfs.sh" "$image")
key=$image-$( (basename "$rootfs"; cat "$here/image/"*) | sha256sum | cut -c1-16)
base=$cache/base-$key.img
kernel=$cache/vmlinuz-$key
initrd=$cache/initrd-$key
if [ ! -f "$base" ]; then
    echo "run-vm: making the base image $base" >&2
    install -m 0644 "$here/image/amd-ctk-vm-test.service" "$rootfs/etc/systemd/system/"
    install -m 0755 "$here/image/amd-ctk-vm-runner" "$rootfs/usr/local/sbin/"
    ln -sf ../amd-ctk-vm-test.service "$rootfs/etc/systemd/system/multi-user.target.wants/amd-ctk-vm-test.service"
    cp "$(ls "$rootfs"/boot/vmlinuz-* | sort -V | tail -n1)" "$kernel.tmp"
    cp "$(ls "$rootfs"/boot/initrd.img-* | sort -V | tail -n1)" "$initrd.tmp"
    rm -f "$base.tmp"
    truncate -s 6G "$base.tmp"
    mkfs.ext4 -q -F -L amdctkvm -d "$rootfs" "$base.tmp"
    mv "$kernel.tmp" "$kernel"
    mv "$initrd.tmp" "$initrd"
    mv "$base.tmp" "$base"
    for old in "$cache"/base-"$image"-*.img "$cache"/vmlinuz-"$image"-* "$cache"/initrd-"$image"-*; do
        case "$old" in *"$key"*) ;; *) rm -f "$old" ;; esac
    done
fi

work=$(mktemp -d "$cache/run.XXXXXX")
trap 'rm -rf "$work"' EXIT
qemu-img create -q -f qcow2 -b "$base" -F raw "$work/overlay.qcow2"
rm -f "$results/exit-status" "$results/suite.log"

accel=${AMD_CTK_VM_ACCEL:-tcg}
echo "run-vm: booting $image (qemu, $accel; timeout ${timeout_s}s)" >&2
start=$(date +%s)
status=0
timeout --foreground -k 10 "$timeout_s" qemu-system-x86_64 \
    -accel "$accel" -cpu max -m 3072 -smp 2 \
    -nographic -vga none -no-reboot -nic none \
    -kernel "$kernel" -initrd "$initrd" \
    -append "root=/dev/vda rw console=ttyS0 quiet systemd.show_status=0 net.ifnames=0 oops=panic panic=-1" \
    -drive "file=$work/overlay.qcow2,format=qcow2,if=virtio" \
    -virtfs "local,path=$payload,mount_tag=payload,security_model=none,readonly=on" \
    -virtfs "local,path=$results,mount_tag=results,security_model=none" \
    > "$results/console.log" 2>&1 < /dev/null || status=$?
echo "run-vm: $image: qemu exited ($status) after $(( $(date +%s) - start ))s" >&2
# A guest kernel crash (seen under TCG with 2 vCPUs, twice in a row once on sid's kernel: "Oops:
# int3" in the page allocator or sched_clock while the kernel patched its own text) is the
# emulator's, not the suite's: oops=panic panic=-1 make it end the VM at once (-no-reboot), and
# exit status 75 tells tests/vm_systemd.rs to boot again (up to three boots in all).
if grep -q "Kernel panic" "$results/console.log"; then
    grep -m1 -B2 -A12 "Oops\|BUG:" "$results/console.log" >&2 || tail -n 40 "$results/console.log" >&2
    echo "run-vm: the guest kernel crashed (an emulation fault, not a test result)" >&2
    exit 75
fi
[ "$status" = 0 ] || { tail -n 40 "$results/console.log" >&2; die "qemu failed or timed out (status $status)"; }
[ -f "$results/exit-status" ] || { tail -n 60 "$results/console.log" >&2; die "the suite did not finish inside the VM"; }
