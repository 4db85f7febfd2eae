#!/bin/bash
# Builds the amd-container-toolkit package from the release binaries (`cargo build --release`).
#
#   packaging/build.sh deb|rpm
#
# Tools: dpkg-deb (Debian package dpkg) for the .deb, rpmbuild (Debian package rpm) for the .rpm.
# Environment (all optional):
#   OUT             output directory                   (default: bin)
#   PKG_VERSION     upstream version                   (default: [workspace.package] version)
#   PKG_RELEASE     Debian revision / RPM release      (default: 1)
#   PKG_MAINTAINER  Maintainer field of the .deb / Packager of the .rpm
#   RELEASE_DIR     where the binaries are             (default: ${CARGO_TARGET_DIR:-target}/release)
#
# The package has no install-time logic that needs a GPU: no CDI generation, no edits to
# Docker, Podman, CRI-O or containerd configuration, nothing under /etc/cdi. Maintainer
# scripts: on removal (deb prerm `remove`, rpm %preun with no version left; not on upgrade)
# `amd-ctk package-removal` takes back what `amd-ctk runtime configure` activated and is
# recognisably ours (Docker's runtimes.amd running amd-container-runtime and default-runtime
# "amd" with it, our hooks JSON, our CRI-O drop-in), so no engine is left pointing at removed
# binaries; the .deb's postrm on purge removes the hook's default log file and our state. The
# udev rule and the amd-cdi-refresh.service unit (CDI specs `amd-ctk cdi generate` wrote follow
# GPU changes) are shipped as files; install, upgrade and removal reload udev's rules and
# systemd's units when those run, and never fail on a host without them.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "packaging: error: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: packaging/build.sh deb|rpm"
kind=$1
case "$kind" in deb|rpm) ;; *) die "usage: packaging/build.sh deb|rpm" ;; esac

name=amd-container-toolkit
out=${OUT:-bin}
release_dir=${RELEASE_DIR:-${CARGO_TARGET_DIR:-target}/release}
version=${PKG_VERSION:-$(sed -n '/^\[workspace\.package\]/,/^\[/ s/^version *= *"\(.*\)".*/\1/p' Cargo.toml)}
[ -n "$version" ] || die "no version in Cargo.toml [workspace.package]"
# SemVer pre-releases (1.2.0-rc.1) sort before the release in both formats only with '~'.
version=${version//-/\~}
release=${PKG_RELEASE:-1}
maintainer=${PKG_MAINTAINER:-AMD container toolkit maintainers <https://github.com/amd/amd-container-toolkit/issues>}
homepage=https://github.com/amd/amd-container-toolkit
summary="OCI hook, runtime entry and CLI that give containers AMD GPUs"
description="\
An OCI hook (amd-container-hook) injects the AMD GPUs a container asks for with
AMD_VISIBLE_DEVICES into the live container: device nodes and device-cgroup
rules, cgroup v1 and v2. amd-container-runtime is a runc-compatible entry for
Docker that registers the hook; amd-ctk generates, lists and validates CDI
specs, lists GPUs and configures container engines. The Podman / CRI-O hook
registration is installed inactive in /usr/share/amd-container-toolkit;
amd-ctk runtime configure --runtime podman|crio activates it. Installing the
package changes no engine configuration and needs no GPU."

bins=(amd-ctk amd-container-runtime amd-container-hook)
for b in "${bins[@]}"; do
    [ -x "$release_dir/$b" ] || die "$release_dir/$b missing: run 'make build' (cargo build --release) first"
done
hook_json=oci-hooks.d/amd-container-toolkit.json
precreate_json=oci-hooks.d/amd-container-toolkit-precreate.json
[ -f "$hook_json" ] || die "$hook_json missing"
udev_rule=packaging/udev/60-amd-container-toolkit-cdi.rules
refresh_unit=packaging/systemd/amd-cdi-refresh.service
for f in README.md LICENSE packaging/default-config.toml "$udev_rule" "$refresh_unit"; do
    [ -f "$f" ] || die "$f missing"
done

# The documented default config must be accepted by the hook, as shipped (all commented)
# and with every key uncommented (unknown keys are an error).
stage=$(mktemp -d "${TMPDIR:-/tmp}/amd-ctk-pkg.XXXXXX")
trap 'rm -rf "$stage"' EXIT
sed -E 's/^#([a-z-]+ = )/\1/' packaging/default-config.toml > "$stage/uncommented.toml"
# (A Swarm variable makes the hook read its config file; "void" asks for no GPU.)
for c in packaging/default-config.toml "$stage/uncommented.toml"; do
    echo '{"process":{"env":["DOCKER_RESOURCE_GPU=void"]}}' \
        | "$release_dir/amd-container-hook" --config "$c" precreate >/dev/null \
        || die "the hook rejects $c"
done

# ---- staging tree: identical for both formats
root=$stage/root
install -d -m 0755 "$root/usr/bin" "$root/usr/share/$name" \
    "$root/usr/share/doc/$name" "$root/etc/$name"
installed=()
for b in "${bins[@]}"; do installed+=("usr/bin/$b"); done
for p in "${installed[@]}"; do
    install -m 0755 "$release_dir/$(basename "$p")" "$root/$p"
    if command -v strip >/dev/null; then strip --strip-all "$root/$p"; fi
done
# Not active on install (a multi-tenant host decides who gets GPUs first):
# `amd-ctk runtime configure --runtime podman|crio [--precreate]` puts it into the hooks directory.
install -m 0644 "$hook_json" "$root/usr/share/$name/$name.json"
if [ -f "$precreate_json" ]; then
    install -m 0644 "$precreate_json" "$root/usr/share/$name/$name-precreate.json"
else
    echo "packaging: warning: $precreate_json missing; the package will not carry it" >&2
fi
install -m 0644 packaging/default-config.toml "$root/etc/$name/config.toml"
install -m 0644 README.md LICENSE "$root/usr/share/doc/$name/"
install -D -m 0644 "$udev_rule" "$root/usr/lib/udev/rules.d/$(basename "$udev_rule")"
install -D -m 0644 "$refresh_unit" "$root/usr/lib/systemd/system/$(basename "$refresh_unit")"
# Reproducible timestamps: the last commit, else now.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
find "$root" -exec touch -h -d "@$epoch" {} +

mkdir -p "$out"

# Run by both formats after install, upgrade and removal: udev and systemd read the rule and the
# unit again. Either may be absent (a container, a host without systemd): never an error.
reload_snippet='if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
if command -v udevadm >/dev/null 2>&1; then
    udevadm control --reload-rules >/dev/null 2>&1 || true
fi'

build_deb() {
    command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian package dpkg)"
    local glibc
    # The newest glibc symbol version any binary needs.
    glibc=$(for p in "${installed[@]}"; do objdump -T "$root/$p" 2>/dev/null; done |
        grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1 || true)
    local libc_dep=libc6
    [ -z "$glibc" ] || libc_dep="libc6 (>= $glibc)"
    install -d -m 0755 "$root/DEBIAN"
    cat > "$root/DEBIAN/control" <<EOF
Package: $name
Version: $version-$release
Architecture: amd64
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $libc_dep, libudev1
Section: admin
Priority: optional
Homepage: $homepage
Description: $summary
$(sed 's/^/ /' <<<"$description")
EOF
    echo "/etc/$name/config.toml" > "$root/DEBIAN/conffiles"
    cat > "$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
# Before the binaries go: take back the engine configuration `amd-ctk runtime configure`
# wrote (only entries and files recognisably ours), so that Docker, Podman and CRI-O do not
# point at removed binaries. Not on upgrade. A failure is reported, never fatal.
set -e
case "$1" in
    remove|deconfigure)
        if [ -x /usr/bin/amd-ctk ]; then
            /usr/bin/amd-ctk package-removal ||
                echo "amd-container-toolkit: could not take back all engine configuration (see above)" >&2
        fi
        ;;
esac
exit 0
EOF
    chmod 0755 "$root/DEBIAN/prerm"
    cat > "$root/DEBIAN/postinst" <<EOF
#!/bin/sh
# The udev rule and amd-cdi-refresh.service are read again (if udev / systemd run here).
set -e
case "\$1" in
    configure)
$reload_snippet
        ;;
esac
exit 0
EOF
    chmod 0755 "$root/DEBIAN/postinst"
    cat > "$root/DEBIAN/postrm" <<EOF
#!/bin/sh
# Removal: udev and systemd forget the rule and the unit. Purge also removes the hook's default
# log file, the GPU tracker's state and the record of generated CDI specs (with the copies of the
# specs a refresh replaced). Nothing else: the package never wrote the container engines'
# configuration, and /etc/cdi is the admin's (a spec amd-ctk generated or refreshed stays).
set -e
case "\$1" in
    remove|purge)
$reload_snippet
        ;;
esac
EOF
    cat >> "$root/DEBIAN/postrm" <<'EOF'
if [ "$1" = purge ]; then
    rm -f /var/log/amd-container-hook.log
    # The GPU tracker's state (amd-ctk gpu-tracker), at its default place.
    rm -f /var/lib/amd-container-toolkit/gpu-tracker.json /var/lib/amd-container-toolkit/gpu-tracker.json.lock
    # What `amd-ctk cdi generate` recorded for `amd-ctk cdi refresh`, and what refresh replaced.
    rm -f /var/lib/amd-container-toolkit/cdi-specs.json
    # The locks of both (0600 files in a 0700 directory).
    rm -f /var/lib/amd-container-toolkit/locks/gpu-tracker.json.lock /var/lib/amd-container-toolkit/locks/cdi-specs.json.lock
    rmdir /var/lib/amd-container-toolkit/locks 2>/dev/null || true
    rm -rf /var/lib/amd-container-toolkit/cdi-previous
    rmdir /var/lib/amd-container-toolkit 2>/dev/null || true
fi
exit 0
EOF
    chmod 0755 "$root/DEBIAN/postrm"
    (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
        xargs -0 md5sum) > "$root/DEBIAN/md5sums"
    chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
    local deb=$out/${name}_${version}-${release}_amd64.deb
    dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
    echo "$deb"
}

build_rpm() {
    command -v rpmbuild >/dev/null || die "rpmbuild not found (Debian package rpm; Fedora rpm-build)"
    local top=$stage/rpmbuild spec=$stage/$name.spec
    mkdir -p "$top"
    {
        cat <<EOF
Name:           $name
Version:        $version
Release:        $release
Summary:        $summary
License:        Apache-2.0
URL:            $homepage
Packager:       $maintainer
AutoReqProv:    yes

# Prebuilt, already stripped binaries: no debuginfo subpackage, no brp scripts.
%global debug_package %{nil}
%global __os_install_post %{nil}
%define _build_id_links none

%description
$description

%install
cp -a "$root/." "%{buildroot}/"

%preun
# Removal (no version left), not upgrade: take back the engine configuration amd-ctk
# runtime configure wrote (only what is recognisably ours); never fatal.
if [ "\$1" -eq 0 ] && [ -x /usr/bin/amd-ctk ]; then
    /usr/bin/amd-ctk package-removal || echo "amd-container-toolkit: could not take back all engine configuration (see above)" >&2
fi

%post
# The udev rule and amd-cdi-refresh.service are read again (if udev / systemd run here).
$reload_snippet

%postun
$reload_snippet

%files
%defattr(-,root,root,-)
/usr/bin/amd-ctk
/usr/bin/amd-container-runtime
/usr/bin/amd-container-hook
%dir /usr/share/$name
/usr/share/$name/$name.json
%dir /etc/$name
%config(noreplace) /etc/$name/config.toml
%dir /usr/share/doc/$name
%doc /usr/share/doc/$name/README.md
%license /usr/share/doc/$name/LICENSE
/usr/lib/udev/rules.d/60-amd-container-toolkit-cdi.rules
/usr/lib/systemd/system/amd-cdi-refresh.service
EOF
        if [ -f "$root/usr/share/$name/$name-precreate.json" ]; then
            echo "/usr/share/$name/$name-precreate.json"
        fi
    } > "$spec"
    # Requires are generated from the ELF binaries: libc.so.6(GLIBC_x)(64bit) and
    # libudev.so.1()(64bit), which systemd-libs (Fedora, RHEL) and libudev1 (openSUSE) provide.
    rpmbuild -bb --quiet --target x86_64 --nodeps \
        --define "_topdir $top" \
        --define "_binary_payload w6.xzdio" \
        --define "_buildhost localhost" \
        --define "use_source_date_epoch_as_buildtime 1" \
        --define "clamp_mtime_to_source_date_epoch 1" \
        "$spec" >/dev/null
    local rpm=$out/$name-$version-$release.x86_64.rpm
    mv "$top/RPMS/x86_64/$name-$version-$release.x86_64.rpm" "$rpm"
    echo "$rpm"
}

export SOURCE_DATE_EPOCH=$epoch
"build_$kind"
