#!/bin/bash
# Run a command with fake AMD GPU hardware, in a private mount namespace.
#
#   run-in-fakehw.sh --fixture FILE.umockdev --cgroup v1|v2 [--workdir DIR] [--strict-nodes] -- CMD [ARGS...]
#
# Inside the namespace:
#   /sys  = a copy of the fixture's umockdev sysfs tree (cached per fixture content under
#           WORKDIR), with the real cgroup hierarchy mounted at /sys/fs/cgroup
#           (v1: rbind of the host's /sys/fs/cgroup; v2: a fresh cgroup2 mount)
#   /dev  = a tmpfs with null zero full random urandom tty (bound from the real /dev), pts, shm,
#           mqueue, ptmx, fd/stdin/stdout/stderr, and real char nodes for every device node of
#           the fixture (drm cardN 0660 gid 44, renderDN 0666 gid 109, kfd 0666 gid 109; with
#           --strict-nodes renderDN and kfd are 0660 gid 109, as on Ubuntu and RHEL)
# Then CMD is exec'd; the script exits with CMD's status.  The host's /dev and /sys are not
# touched: every mount lives in the private namespace and disappears with it.
#
# libudev rejects a /sys that is not a real sysfs unless SYSTEMD_DEVICE_VERIFY_SYSFS=0 is in the
# environment of the process using it (this script does not set it; pass it yourself, e.g. in an
# OCI hook's "env").
#
# Environment exported to CMD: FAKEHW_FIXTURE, FAKEHW_CGROUP, FAKEHW_SYSFS (the cached tree).
set -euo pipefail

me=$(readlink -f "$0")
die() { echo "run-in-fakehw: error: $*" >&2; exit 125; }
usage() {
    sed -n '2,4p' "$me" | sed 's/^# \{0,1\}//' >&2
    exit 125
}

# ------------------------------------------------------------------------------------------
# stage 2: inside the private mount namespace
if [ "${1:-}" = "--inner" ]; then
    shift
    fixture=$1 cgroup=$2 sysdir=$3 mnt=$4 nodes=$5 open_mode=$6
    shift 6

    mount --make-rprivate /

    # /sys: fake tree + real cgroup hierarchy
    if [ "$cgroup" = v1 ]; then
        mount --rbind /sys/fs/cgroup "$sysdir/fs/cgroup"
    else
        mount -t cgroup2 none "$sysdir/fs/cgroup"
    fi
    mount --rbind "$sysdir" /sys

    # /dev: tmpfs with the basics bound back from the real /dev, plus the fixture's nodes
    realdev=$mnt/realdev
    mount --rbind /dev "$realdev"
    mount -t tmpfs -o mode=755,nosuid fakehw-dev /dev
    for n in null zero full random urandom tty; do
        [ -e "$realdev/$n" ] || die "real /dev/$n missing"
        touch "/dev/$n"
        mount --bind "$realdev/$n" "/dev/$n"
    done
    for d in pts shm mqueue; do
        mkdir -p "/dev/$d"
        if mountpoint -q "$realdev/$d"; then
            mount --rbind "$realdev/$d" "/dev/$d"
        elif [ "$d" = shm ]; then
            mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
        fi
    done
    ln -s pts/ptmx /dev/ptmx
    ln -s /proc/self/fd /dev/fd
    ln -s /proc/self/fd/0 /dev/stdin
    ln -s /proc/self/fd/1 /dev/stdout
    ln -s /proc/self/fd/2 /dev/stderr
    umount -l "$realdev"

    while read -r name maj min; do
        [ -n "$name" ] || continue
        mkdir -p "/dev/$(dirname "$name")"
        mknod "/dev/$name" c "$maj" "$min"
        case "$name" in
            dri/card*)    mode=0660 gid=44 ;;
            dri/render*)  mode=$open_mode gid=109 ;;
            kfd)          mode=$open_mode gid=109 ;;
            *)            mode=0660 gid=0 ;;
        esac
        chown "0:$gid" "/dev/$name"
        chmod "$mode" "/dev/$name"
    done < "$nodes"

    export FAKEHW_FIXTURE=$fixture FAKEHW_CGROUP=$cgroup FAKEHW_SYSFS=$sysdir
    exec "$@"
fi

# ------------------------------------------------------------------------------------------
# stage 1: argument parsing, prerequisites, cached sysfs tree
fixture= cgroup= workdir=${FAKEHW_WORKDIR:-${TMPDIR:-/tmp}/fakehw} open_mode=0666
while [ $# -gt 0 ]; do
    case "$1" in
        --fixture) fixture=${2:-}; shift 2 || usage ;;
        --cgroup) cgroup=${2:-}; shift 2 || usage ;;
        --workdir) workdir=${2:-}; shift 2 || usage ;;
        --strict-nodes) open_mode=0660; shift ;;
        --) shift; break ;;
        -h|--help) usage ;;
        *) echo "run-in-fakehw: unknown argument: $1" >&2; usage ;;
    esac
done
[ -n "$fixture" ] && [ -n "$cgroup" ] && [ $# -gt 0 ] || usage
case "$cgroup" in v1|v2) ;; *) die "--cgroup must be v1 or v2, not '$cgroup'" ;; esac
[ -f "$fixture" ] || die "fixture not found: $fixture"
fixture=$(readlink -f "$fixture")

[ "$(id -u)" = 0 ] || die "must run as root (needs unshare -m, mount, mknod)"
for tool in unshare mount umount mountpoint mknod sha256sum awk; do
    command -v "$tool" >/dev/null || die "'$tool' not found (util-linux / coreutils)"
done
if [ "$cgroup" = v1 ]; then
    grep -qw cgroup /proc/filesystems || die "kernel has no cgroup v1 support"
    [ -d /sys/fs/cgroup ] && mountpoint -q /sys/fs/cgroup || die "/sys/fs/cgroup is not mounted"
    [ -d /sys/fs/cgroup/devices ] || \
        echo "run-in-fakehw: warning: no v1 devices controller at /sys/fs/cgroup/devices" >&2
else
    grep -qw cgroup2 /proc/filesystems || die "kernel has no cgroup2 support"
fi

mkdir -p "$workdir" || die "cannot create workdir $workdir"
workdir=$(readlink -f "$workdir")
key=$(sha256sum < "$fixture" | cut -c1-16)
cache=$workdir/$(basename "$fixture" .umockdev)-$key
sysdir=$cache/sys
nodes=$cache/nodes

if [ ! -f "$cache/.complete" ]; then
    command -v umockdev-run >/dev/null || die "umockdev-run not found (apt-get install umockdev)"
    tmp=$(mktemp -d "$workdir/.build.XXXXXX")
    # shellcheck disable=SC2016
    umockdev-run -d "$fixture" -- sh -c 'cp -a "$UMOCKDEV_DIR/sys" "$1/sys"' sh "$tmp" \
        || { rm -rf "$tmp"; die "umockdev-run could not load $fixture"; }
    bad=$(find "$tmp/sys" -type l -lname '/*' | head -n1)
    [ -z "$bad" ] || { rm -rf "$tmp"; die "absolute symlink in the sysfs tree: $bad"; }
    mkdir -p "$tmp/sys/fs/cgroup"
    # device nodes: every block with an N: line, major:minor from its dev attribute
    awk -f "$(dirname "$me")/fixture-nodes.awk" "$fixture" > "$tmp/nodes"
    touch "$tmp/.complete"
    if ! mv -T "$tmp" "$cache" 2>/dev/null; then
        rm -rf "$tmp"   # another run built it concurrently
        [ -f "$cache/.complete" ] || die "could not create cache $cache"
    fi
fi
mkdir -p "$workdir/mnt/realdev"

exec unshare -m --propagation private -- \
    "$me" --inner "$fixture" "$cgroup" "$sysdir" "$workdir/mnt" "$nodes" "$open_mode" "$@"
