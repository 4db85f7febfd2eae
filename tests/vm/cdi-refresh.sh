# The CDI refresh test of the VM suite (sourced by suite.sh after lib.sh; runs inside the test VM
# as root, after setup_fakehw and install_toolkit, as the suite's last test: it takes a fake GPU
# away).
#
# Contract of cdi_refresh_udev: installs the udev rule and amd-cdi-refresh.service where the
# packages put them, with the VM's real systemd-udevd and systemd, then
#   (a) a real uevent on a host that never generated a spec: the unit does not run, no spec;
#   (b) a spec generated with non-default options (yaml, index+uuid names), a fake GPU taken away,
#       a real uevent: the spec is regenerated within a bounded wait, with the same options,
#       without that GPU, the replaced spec kept under /var/lib/amd-container-toolkit;
#   (c) another real uevent with nothing changed: the spec is not rewritten (same inode, mtime).
# The real uevents come from the vgem module (a virtual GPU with a real drm card and render node
# in the kernel's sysfs): the fake GPUs' sysfs is a plain tree, where writing `uevent` makes none.
# shellcheck shell=bash

CDI_RULE=/usr/lib/udev/rules.d/60-amd-container-toolkit-cdi.rules
CDI_UNIT=amd-cdi-refresh.service
CDI_STATE=/var/lib/amd-container-toolkit/cdi-specs.json

# The unit's journal since the current step began (cdi_step).
cdi_unit_log() { journalctl -u "$CDI_UNIT" --no-pager -o cat --since "@$CDI_T0" 2>/dev/null; }
# cdi_step: the previous step's messages are older than the next step's start.
cdi_step() { sleep 1; CDI_T0=$(date +%s); }
# cdi_wait_unit N PATTERN: waits (60 s at most) for N journal lines of the unit matching PATTERN
# since the step began, with no job queued for the unit and the unit not running.
cdi_wait_unit() {
    local want=$1 what=$2 i
    for i in $(seq 1 120); do
        udevadm settle --timeout=5 2>/dev/null || true
        if [ "$(cdi_unit_log | grep -cE "$what")" -ge "$want" ] \
            && [ "$(systemctl show -P ActiveState "$CDI_UNIT")" != activating ] \
            && ! systemctl list-jobs --no-legend 2>/dev/null | grep -q "$CDI_UNIT"; then
            return 0
        fi
        sleep 0.5
    done
    cdi_unit_log | sed 's/^/  | /'
    fail "$CDI_UNIT: no '$what' ($want) within 60 s"
}

cdi_refresh_udev() {
    local ok=0
    install -D -m 0644 "$P/packaging/60-amd-container-toolkit-cdi.rules" "$CDI_RULE"
    install -D -m 0644 "$P/packaging/$CDI_UNIT" "/usr/lib/systemd/system/$CDI_UNIT"
    # The one test-only setting, as for the hook: libudev in amd-ctk reads the fake sysfs.
    mkdir -p "/run/systemd/system/$CDI_UNIT.d"
    printf '[Service]\nEnvironment=%s\n' "$FAKE_SYSFS_ENV" > "/run/systemd/system/$CDI_UNIT.d/fakehw.conf"
    systemctl daemon-reload
    udevadm control --reload-rules
    # Earlier tests generated /etc/cdi/amd.json: this host starts as one that never did.
    rm -f /etc/cdi/amd.json /etc/cdi/amd.yaml "$CDI_STATE"
    rm -rf /var/lib/amd-container-toolkit/cdi-previous
    cdi_step
    log "(a) no spec was ever generated; modprobe vgem (a real drm card and render node appear)"
    modprobe vgem || return 1
    ls -l /sys/devices/platform/vgem/drm 2>/dev/null || true
    cdi_wait_unit 1 'unmet condition|skipped' || ok=1
    if [ -e /etc/cdi/amd.json ] || [ -e /etc/cdi/amd.yaml ] || [ -e "$CDI_STATE" ]; then
        ls -l /etc/cdi "$CDI_STATE" 2>&1 | sed 's/^/  | /'
        echo "a host that never generated a spec got one"; ok=1
    else
        log "(a) no spec, no record: ok"
    fi

    cdi_step
    log "(b) generate (yaml, index+uuid names), take GPU 7 away, rmmod vgem"
    local spec=/etc/cdi/amd.yaml
    SYSTEMD_DEVICE_VERIFY_SYSFS=0 amd-ctk cdi generate --output "$spec" --device-name-strategy index,uuid \
        || return 1
    cat "$CDI_STATE"
    local before gone node
    before=$(grep -c '^- name:' "$spec")
    gone=$(SYSTEMD_DEVICE_VERIFY_SYSFS=0 amd-ctk gpu list --format json \
        | jq -r '.gpus[] | select(.index == 7) | .card.path, .render.path' | xargs -n1 basename)
    [ -n "$gone" ] || fail "no nodes for GPU 7 in gpu list"
    for node in $gone; do rm -f "/sys/class/drm/$node"; done
    log "(b) removed /sys/class/drm/{$(echo $gone | tr ' ' ,)} from the fake tree; spec has $before devices"
    local inode0
    inode0=$(stat -c %i "$spec")
    rmmod vgem || return 1
    cdi_wait_unit 1 'Refreshed CDI spec' || ok=1
    cdi_unit_log | sed 's/^/  journal | /'
    local after
    after=$(grep -c '^- name:' "$spec")
    # index+uuid: one device less by index, one less by uuid.
    if [ "$after" = $((before - 2)) ] && ! grep -q "^- name: '7'$" "$spec" \
        && grep -q "^- name: '\\?0x" "$spec" && head -c1 "$spec" | grep -qv '{'; then
        log "(b) regenerated: $before -> $after devices, still yaml with uuid names, no GPU 7"
    else
        sed 's/^/  | /' "$spec" | head -n 40
        echo "the spec was not regenerated with the same options ($before -> $after devices)"; ok=1
    fi
    [ "$(stat -c %i "$spec")" != "$inode0" ] || { echo "the spec was not replaced"; ok=1; }
    if [ -s /var/lib/amd-container-toolkit/cdi-previous/etc%2Fcdi%2Famd.yaml ] \
        && [ "$(grep -c '^- name:' /var/lib/amd-container-toolkit/cdi-previous/etc%2Fcdi%2Famd.yaml)" = "$before" ]; then
        log "(b) the replaced spec is kept in /var/lib/amd-container-toolkit/cdi-previous"
    else
        ls -lR /var/lib/amd-container-toolkit 2>&1 | sed 's/^/  | /'
        echo "the replaced spec was not kept"; ok=1
    fi
    SYSTEMD_DEVICE_VERIFY_SYSFS=0 amd-ctk cdi validate --path "$spec" || ok=1

    cdi_step
    log "(c) modprobe vgem again: nothing of ours changed, the spec is not rewritten"
    local stamp1
    stamp1=$(stat -c '%i %Y.%y' "$spec")
    modprobe vgem || return 1
    cdi_wait_unit 1 'up to date' || ok=1
    [ "$(stat -c '%i %Y.%y' "$spec")" = "$stamp1" ] || { echo "an unchanged spec was rewritten"; ok=1; }
    rmmod vgem || true
    echo "== $CDI_UNIT journal"
    cdi_unit_log | sed 's/^/  | /'
    return $ok
}
