#!/bin/bash
# Removing the package takes back what `amd-ctk runtime configure` activated, and nothing else:
#
#   packaging/test-removal.sh DEB        (as root; run by .ci/run)
#
# Installs DEB over a daemon.json with the admin's own keys, runtime and `features`, configures
# Docker (--set-as-default; Docker's CDI on, the default) and Podman as an admin would, reinstalls
# it (an upgrade keeps all that), removes the package (dpkg -r), and checks that daemon.json is the
# admin's again (same JSON: runtimes.amd, the default and features.cdi taken back, the admin's
# features kept), amd-ctk's record of features.cdi is gone, our hooks JSON is gone and another
# vendor's hook stays; then purges. /etc/docker/daemon.json (and .bak) and that record are restored
# at the end.
set -euo pipefail
deb=${1:?usage: packaging/test-removal.sh DEB}
name=amd-container-toolkit
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v jq >/dev/null || fail "jq is needed (tests/install-deps.sh installs it)"
work=$(mktemp -d)
hooks=/usr/share/containers/oci/hooks.d
vendor_hook=$hooks/zz-other-vendor-test.json
record=/var/lib/amd-container-toolkit/docker-cdi.json
for f in /etc/docker/daemon.json /etc/docker/daemon.json.bak; do
    [ ! -e "$f" ] || cp -a "$f" "$work/$(basename "$f").saved"
done
[ ! -e "$record" ] || cp -a "$record" "$work/docker-cdi.json.saved"
had_docker_dir=$([ -d /etc/docker ] && echo 1 || echo 0)
had_hooks_dir=$([ -d $hooks ] && echo 1 || echo 0)
restore() {
    if dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q 'ok installed\|config-files'; then
        dpkg --purge "$name" >/dev/null || true
    fi
    for f in daemon.json daemon.json.bak; do
        if [ -e "$work/$f.saved" ]; then cp -a "$work/$f.saved" "/etc/docker/$f"; else rm -f "/etc/docker/$f"; fi
    done
    if [ -e "$work/docker-cdi.json.saved" ]; then cp -a "$work/docker-cdi.json.saved" "$record"; else rm -f "$record"; fi
    [ "$had_docker_dir" = 1 ] || rmdir /etc/docker 2>/dev/null || true
    rm -f "$vendor_hook"
    [ "$had_hooks_dir" = 1 ] || rmdir -p $hooks 2>/dev/null || true
    rm -rf "$work"
}
trap restore EXIT

mkdir -p /etc/docker $hooks
printf '{\n  "log-level": "warn",\n  "features": {"buildkit": true},\n  "runtimes": {"other": {"path": "/usr/bin/other-runtime"}}\n}\n' \
    > /etc/docker/daemon.json
rm -f "$record"
jq -S . /etc/docker/daemon.json > "$work/before"
printf '{"version": "1.0.0", "hook": {"path": "/usr/bin/other"}, "when": {"always": true}, "stages": ["prestart"]}\n' \
    > "$vendor_hook"

echo "== dpkg -i; amd-ctk runtime configure --runtime docker --set-as-default; --runtime podman"
dpkg -i "$deb" >/dev/null
/usr/bin/amd-ctk runtime configure --runtime docker --set-as-default
/usr/bin/amd-ctk runtime configure --runtime podman
jq -e '.runtimes.amd.path == "amd-container-runtime" and ."default-runtime" == "amd"' \
    /etc/docker/daemon.json >/dev/null || fail "configure did not add runtimes.amd as default"
jq -e '.features == {"buildkit": true, "cdi": true}' /etc/docker/daemon.json >/dev/null \
    || fail "configure did not merge features.cdi = true into the admin's features"
[ -f "$record" ] || fail "configure did not record that it set features.cdi ($record)"
[ -f $hooks/$name.json ] || fail "configure did not activate $hooks/$name.json"

echo "== dpkg -i again (an upgrade or reinstall: prerm upgrade) keeps the configuration"
dpkg -i "$deb" >/dev/null
jq -e '."default-runtime" == "amd"' /etc/docker/daemon.json >/dev/null || fail "an upgrade took the configuration back"
[ -f $hooks/$name.json ] || fail "an upgrade removed $hooks/$name.json"

echo "== dpkg -r $name"
dpkg -r "$name" | tee "$work/remove.log"
jq -S . /etc/docker/daemon.json | diff -u "$work/before" - \
    || fail "daemon.json after removal is not the admin's: runtimes.amd / default-runtime / features.cdi left, or other keys changed"
[ ! -e "$record" ] || fail "$record left after removal took features.cdi back"
[ ! -e $hooks/$name.json ] || fail "$hooks/$name.json left after removal"
[ -f "$vendor_hook" ] || fail "removal deleted another vendor's hook $vendor_hook"
[ ! -e /usr/bin/amd-ctk ] || fail "/usr/bin/amd-ctk left after removal"
grep -q 'systemctl restart docker' "$work/remove.log" || fail "removal did not say how to apply it to Docker"

echo "== dpkg --purge $name"
dpkg --purge "$name" >/dev/null
jq -S . /etc/docker/daemon.json | diff -u "$work/before" - || fail "purge changed daemon.json"
echo "removed: daemon.json is the admin's again (features.cdi taken back), our hooks JSON is gone, another vendor's hook stays"
