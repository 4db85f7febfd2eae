# The rootless Podman tests of the VM suite (sourced by suite.sh after lib.sh; runs inside the test
# VM as root, after setup_fakehw, install_toolkit and podman-setup's CDI spec in /etc/cdi).
#
# Contract: a normal user (ROOTLESS_USER, with subuids and subgids) runs Podman rootless (its own
# storage, the cgroupfs manager: no user session in the VM). rootless-cdi: `--device amd.com/gpu=N`
# gives exactly that GPU when the user may open its nodes. rootless-hook: with our hook registered
# (the user's --hooks-dir), AMD_VISIBLE_DEVICES=N gives exactly that GPU (the host's nodes
# bind-mounted, as CDI does), also after a daemon-reload; when a node is one the user may not open,
# the create fails with the hook's message naming the node and CDI (crun drops a hook's stderr:
# its `run.oci.hooks.stderr` annotation keeps it) and no container is left.
# shellcheck shell=bash

ROOTLESS_USER=amdrootless

# rootless_podman ARGS...: podman as the rootless user.
rootless_podman() {
    local uid
    uid=$(id -u "$ROOTLESS_USER")
    (cd / && runuser -u "$ROOTLESS_USER" -- env XDG_RUNTIME_DIR="/run/user/$uid" HOME="/home/$ROOTLESS_USER" \
        podman --cgroup-manager=cgroupfs --events-backend=file "$@")
}

rootless_setup() {
    id "$ROOTLESS_USER" >/dev/null 2>&1 || useradd -m -s /bin/sh "$ROOTLESS_USER"
    grep -q "^$ROOTLESS_USER:" /etc/subuid || usermod --add-subuids 200000-265535 "$ROOTLESS_USER"
    grep -q "^$ROOTLESS_USER:" /etc/subgid || usermod --add-subgids 200000-265535 "$ROOTLESS_USER"
    grep "^$ROOTLESS_USER:" /etc/subuid /etc/subgid
    local uid
    uid=$(id -u "$ROOTLESS_USER")
    install -d -m 0700 -o "$ROOTLESS_USER" -g "$ROOTLESS_USER" "/run/user/$uid"
    rootless_podman info --format 'rootless={{.Host.Security.Rootless}} {{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} cgroup v{{.Host.CgroupsVersion}}'
    [ "$(rootless_podman info --format '{{.Host.Security.Rootless}}')" = true ] || fail "podman is not rootless"
    rootless_podman import -q "$W/rootfs.tar" localhost/bb:test >/dev/null
    mkdir -p "$W/hooks-rootless"
    amd-ctk runtime configure --runtime podman --hooks-dir "$W/hooks-rootless"
    local f
    for f in "$W"/hooks-rootless/*.json; do
        jq --arg fe "$FAKE_SYSFS_ENV" '.hook.env += [$fe]' "$f" > "$f.new" && mv "$f.new" "$f"
    done
    chmod -R a+rX "$W/hooks-rootless"
}

# The user may open every node of the fixture (as a member of the groups that own them would).
rootless_nodes_open() { chmod 0666 /dev/kfd /dev/dri/*; }
rootless_nodes_restore() { chmod 0666 /dev/kfd /dev/dri/renderD*; chmod 0660 /dev/dri/card*; }

rootless_cdi() {
    local ok=0
    rootless_nodes_open
    expect_gpu "rootless CDI amd.com/gpu=$REQ" "$WANT" \
        rootless_podman run --rm --network none --device "amd.com/gpu=$REQ" localhost/bb:test || ok=1
    rootless_nodes_restore
    return $ok
}

rootless_hook() {
    local ok=0 c out hooks=(--hooks-dir "$W/hooks-rootless")
    rootless_nodes_open
    c=$(rootless_podman "${hooks[@]}" run -d --network none -e "AMD_VISIBLE_DEVICES=$REQ" localhost/bb:test sleep 3600) \
        || { rootless_nodes_restore; fail "rootless podman run with AMD_VISIBLE_DEVICES=$REQ"; }
    expect_gpu_across_reload "rootless hook" "$WANT" rootless_podman exec "$c" || ok=1
    expect_null "rootless hook, /dev/null still" rootless_podman exec "$c" || ok=1
    rootless_podman rm -f -t 0 "$c" >/dev/null
    expect_gpu "rootless hook, no request" "" \
        rootless_podman "${hooks[@]}" run --rm --network none localhost/bb:test || ok=1
    # A node the user may not open (card: 0660 root:44, the user not in group 44): the create fails.
    rootless_nodes_restore
    local err=/tmp/amd-rootless-hook.err
    rm -f "$err"
    if out=$(rootless_podman "${hooks[@]}" run --rm --network none --name amd-rootless-denied \
        --annotation "run.oci.hooks.stderr=$err" -e "AMD_VISIBLE_DEVICES=$REQ" localhost/bb:test true 2>&1); then
        echo "the container started although the user may not open the card node"; ok=1
    fi
    echo "$out" | sed 's/^/  podman | /'
    sed 's/^/  hook | /' "$err" 2>/dev/null || true
    grep -q 'rootless engine: its user may not open /dev/dri/card' "$err" 2>/dev/null \
        && grep -q 'CDI' "$err" || { echo "the hook's error does not name the node and CDI"; ok=1; }
    if rootless_podman ps -a --format '{{.Names}}' | grep -qx amd-rootless-denied; then
        echo "a container is left behind"; ok=1
        rootless_podman rm -f amd-rootless-denied >/dev/null 2>&1 || true
    fi
    return $ok
}

run_rootless_tests() {
    run_test rootless-setup rootless_setup
    run_test rootless-cdi rootless_cdi
    run_test rootless-hook rootless_hook
}
