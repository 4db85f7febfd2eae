# Helpers of the VM suite (sourced by suite.sh; runs inside the test VM as root).
# shellcheck shell=bash

P=${PAYLOAD:-/mnt/payload}
W=/run/amdvm                 # scratch, on the VM's tmpfs
HOOK_PATH=/usr/bin/amd-container-hook
PATH_ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# libudev ignores a /sys that is not a real sysfs; the fake one needs this in the hook's
# environment (the only test-only setting: the product never sets it).
FAKE_SYSFS_ENV=SYSTEMD_DEVICE_VERIFY_SYSFS=0

log() { echo "[$(date -u +%T)] $*"; }
fail() { echo "FAIL: $*"; return 1; }

# ---- results: "RESULT <name> PASS|FAIL|HOST-BROKEN|ENGINE-LIMIT" lines, read by
# tests/vm_systemd.rs. HOST-BROKEN (status 3): a control without our hook failed, the host is at
# fault; ENGINE-LIMIT (status 4): an engine drops its own devices too (only for named controls).
declare -a RESULTS=()
run_test() {
    local name=$1; shift
    echo
    echo "=== TEST $name"
    local start=$SECONDS status
    ( set -eE -o pipefail; "$@" ) 2>&1
    status=$?
    local verdict=PASS
    case $status in
        0) ;;
        3) verdict=HOST-BROKEN ;;
        4) verdict=ENGINE-LIMIT ;;
        *) verdict=FAIL ;;
    esac
    echo "RESULT $name $verdict ($((SECONDS - start))s)"
    RESULTS+=("$name $verdict")
}

# ---- fake hardware: the fixture's sysfs over /sys (the real cgroup2, kernel and module trees
# bound into it), its device nodes in the VM's own /dev (no driver behind them: ENXIO).
setup_fakehw() {
    mkdir -p /run/fakehw
    tar -C /run/fakehw -xf "$P/sysfs.tar"
    local s=/run/fakehw/sys d
    mkdir -p "$s/fs/cgroup"
    mount --bind /sys/fs/cgroup "$s/fs/cgroup"
    for d in kernel module fs/bpf; do
        [ -d "/sys/$d" ] || continue
        mkdir -p "$s/$d"
        mount --rbind "/sys/$d" "$s/$d"
    done
    mount --rbind "$s" /sys
    local name maj min mode gid
    while read -r name maj min; do
        [ -n "$name" ] || continue
        mkdir -p "/dev/$(dirname "$name")" /dev/char
        rm -f "/dev/$name"
        mknod "/dev/$name" c "$maj" "$min"
        case "$name" in
            dri/card*) mode=0660 gid=44 ;;
            dri/render*) mode=0666 gid=109 ;;
            *) mode=0666 gid=109 ;;
        esac
        chown "0:$gid" "/dev/$name"
        chmod "$mode" "/dev/$name"
        ln -sfn "../$name" "/dev/char/$maj:$min"   # as udev does for real devices
    done < "$P/nodes"
}

install_toolkit() {
    install -m 0755 "$P/bin/amd-ctk" "$P/bin/amd-container-hook" "$P/bin/amd-container-runtime" /usr/bin/
    install -m 0755 "$P/bin/amd-ctk-cri-client" /usr/local/bin/   # the tests' CRI client, not the product
    mkdir -p /etc/amd-container-toolkit
    cat > /etc/amd-container-toolkit/config.toml <<CONF
[hook]
log-file = "/var/log/amd-container-hook.log"
log-level = "debug"

[runtime]
hook-env = ["$FAKE_SYSFS_ENV"]
CONF
}

# A busybox image as a rootfs directory and a tarball (for podman/docker import).
make_rootfs() {
    local r=$W/rootfs
    mkdir -p "$r/bin" "$r/dev" "$r/proc" "$r/sys" "$r/tmp" "$r/etc"
    cp /bin/busybox "$r/bin/busybox"
    local a
    for a in sh cat ls sleep echo true head grep; do ln -sf busybox "$r/bin/$a"; done
    echo 'root:x:0:0:root:/:/bin/sh' > "$r/etc/passwd"
    echo 'root:x:0:' > "$r/etc/group"
    tar -C "$r" -cf "$W/rootfs.tar" .
}

# make_bundle DIR RUNTIME ID [hook] [ENV=VALUE...]: an OCI bundle running `sleep 3600` under the
# systemd cgroup driver (cgroupsPath slice:prefix:name); "hook" registers amd-container-hook as
# createRuntime hook the way a hooks entry does.
make_bundle() {
    local dir=$1 runtime=$2 id=$3; shift 3
    local hook=no
    if [ "${1:-}" = hook ]; then hook=yes; shift; fi
    rm -rf "$dir"
    mkdir -p "$dir"
    cp -a "$W/rootfs" "$dir/rootfs"
    (cd "$dir" && runc spec)
    local env_json
    env_json=$(printf '%s\n' "$PATH_ENV" "$@" | jq -R . | jq -s .)
    jq --argjson env "$env_json" --arg cg "system.slice:$runtime:$id" --arg hook "$hook" \
       --arg hp "$HOOK_PATH" --arg pe "$PATH_ENV" --arg fe "$FAKE_SYSFS_ENV" '
        .process.terminal = false
        | .process.args = ["sleep", "3600"]
        | .process.env = $env
        | .linux.cgroupsPath = $cg
        | if $hook == "yes" then
            .hooks.createRuntime = [{path: $hp, args: ["amd-container-hook", "createRuntime"],
                                     env: [$pe, $fe]}]
          else . end
    ' "$dir/config.json" > "$dir/config.json.new"
    mv "$dir/config.json.new" "$dir/config.json"
}

# The probe: for each node of the fixture, "PATH absent|usable|denied|other:...". The device
# cgroup is consulted before the driver: EPERM means it denies; past it, a node with no driver
# behind it gives ENXIO (no driver for the major: kfd here) or ENODEV (the VM's kernel has the
# DRM core built in, which knows major 226 but has no minor 128+: "No such device").
PROBE='for p in "$@"; do
  if [ ! -e "$p" ]; then echo "$p absent"; continue; fi
  e=$(cat "$p" 2>&1 >/dev/null)
  case "$e" in
    *"No such device or address"*|*"No such device") echo "$p usable" ;;
    *"Operation not permitted"*) echo "$p denied" ;;
    *) echo "$p other:$e" ;;
  esac
done
for p in /dev/dri/*; do
  [ -e "$p" ] || continue
  case " $* " in *" $p "*) ;; *) echo "$p unexpected" ;; esac
done'

probe_targets() {
    local name maj min
    while read -r name maj min; do echo "/dev/$name"; done < "$P/nodes"
}

# expect_gpu WHAT WANT CMD...: runs the probe with CMD (e.g. `runc exec ID`), and requires the
# nodes in WANT (space-separated) to be usable and every other node of the fixture absent.
expect_gpu() {
    local what=$1 want=$2; shift 2
    local out p state bad=0
    out=$("$@" sh -c "$PROBE" probe $(probe_targets) 2>&1) || { echo "$out"; fail "$what: probe did not run"; }
    while read -r p state; do
        case " $want " in
            *" $p "*) [ "$state" = usable ] || { echo "  $p: $state (want usable)"; bad=1; } ;;
            *) [ "$state" = absent ] || { echo "  $p: $state (want absent)"; bad=1; } ;;
        esac
    done <<< "$out"
    if [ $bad = 0 ]; then
        log "$what: ok ($want usable, the rest absent)"
    else
        echo "$out" | sed 's/^/  | /'
        fail "$what"
    fi
}

# expect_null WHAT CMD...: /dev/null opens (the control: a container without our hook).
expect_null() {
    local what=$1; shift
    local out
    if out=$("$@" sh -c 'cat /dev/null && echo null-ok' 2>&1) && [ "$out" = null-ok ]; then
        log "$what: /dev/null ok"
    else
        echo "  | $out"
        return 1
    fi
}

# expect_no_gpu WHAT CMD...: expect_gpu with no node wanted, then expect_null (the container works,
# only without a GPU); fails when either does.
expect_no_gpu() {
    local what=$1 ok=0; shift
    expect_gpu "$what" "" "$@" || ok=1
    expect_null "$what" "$@" || ok=1
    return $ok
}

# A systemd daemon-reload (what re-applies a unit's device list). A failed reload ends the test,
# also where a caller's `||` turns errexit off.
reload_systemd() {
    systemctl daemon-reload || exit
    sleep 1
}

# expect_gpu_across_reload WHAT WANT CMD...: expect_gpu "WHAT, started", a daemon-reload, then
# expect_gpu "WHAT, after daemon-reload"; fails when either probe does.
expect_gpu_across_reload() {
    local what=$1 want=$2 ok=0; shift 2
    expect_gpu "$what, started" "$want" "$@" || ok=1
    reload_systemd
    expect_gpu "$what, after daemon-reload" "$want" "$@" || ok=1
    return $ok
}

# The device programs attached along a process's cgroup path, for the log.
show_cgroup() {
    local pid=$1 cg dir
    cg=$(sed -n 's/^0:://p' "/proc/$pid/cgroup")
    echo "  cgroup of $pid: $cg"
    dir=/sys/fs/cgroup$cg
    while [ "$dir" != /sys/fs/cgroup ]; do
        echo "    ${dir#/sys/fs/cgroup}: $(bpftool cgroup show "$dir" 2>/dev/null | awk 'NR>1 {printf "%s(%s) ", $1, $NF}')"
        dir=$(dirname "$dir")
    done
}

# gpu_nodes all|IDX...: the nodes GPUs IDX (or every GPU) give, as expect_gpu's WANT: /dev/kfd and
# each GPU's card and render node, read from the fixture by amd-ctk (no node names hard-coded).
gpu_nodes() {
    local sel
    if [ "$1" = all ]; then sel='.gpus[]'; else sel=".gpus[] | select(.index as \$i | [$(IFS=,; echo "$*")] | index(\$i))"; fi
    SYSTEMD_DEVICE_VERIFY_SYSFS=0 amd-ctk gpu list --format json \
        | jq -r "[.kfd.path] + [$sel | .card.path, .render.path] | join(\" \")"
}

# version_at_least HAVE WANT: dotted versions compared numerically (28.5.2 >= 28.3).
version_at_least() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}
