#!/bin/bash
# The systemd + cgroup v2 suite, run inside the test VM (tests/vm/run-vm.sh) as root. Each test
# prints its steps and ends with "RESULT <name> PASS|FAIL|HOST-BROKEN"; tests/vm_systemd.rs
# requires every expected test to PASS and shows this output when one does not.
#
# Hardware: the fixture in the payload (8x MI300X). Request: GPU 3 = card6 + renderD133, plus the
# shared /dev/kfd. Engines: runc and crun with --systemd-cgroup, Podman (crun, systemd cgroup
# manager), Docker (systemd cgroup driver), each with the hook registered as the product does it.
set -u
. "${PAYLOAD:-/mnt/payload}/lib.sh"
. "${PAYLOAD:-/mnt/payload}/cdi-refresh.sh"
. "${PAYLOAD:-/mnt/payload}/cri.sh"
. "${PAYLOAD:-/mnt/payload}/rootless.sh"

REQ=3
UPDATE_REFUSED='updating device access list not supported when using BPFProgram'
WANT="/dev/kfd /dev/dri/card6 /dev/dri/renderD133"

echo "== VM: $(uname -r), $(systemctl --version | head -n1), $(runc --version | head -n1), $(crun --version | head -n1)"
echo "== $(podman --version), $(dockerd --version), containerd $(containerd --version | awk '{print $3}')"
echo "== cgroup: $(stat -fc %T /sys/fs/cgroup); char majors: $(awk '/^Character/ {c=1; next} /^$/ {c=0} c' /proc/devices | tr '\n' ' ')"
mkdir -p "$W"
setup_fakehw
install_toolkit
make_rootfs
echo "== fake hardware: $(ls /sys/class/drm | tr '\n' ' ')"
SYSTEMD_DEVICE_VERIFY_SYSFS=0 amd-ctk gpu list || true

# ---- bare runc / crun, systemd cgroup driver, hook as a createRuntime entry
lowlevel_control() {
    local rt=$1 id=ctl-$1
    make_bundle "$W/$id" "$rt" "$id"
    (cd "$W/$id" && "$rt" --systemd-cgroup run -d "$id" </dev/null >/dev/null 2>&1)
    expect_null "$rt control, started" "$rt" exec "$id" || { "$rt" delete -f "$id"; return 3; }
    reload_systemd
    if ! expect_null "$rt control, after daemon-reload" "$rt" exec "$id"; then
        echo "HOST BROKEN: a container without our hook lost /dev/null on daemon-reload"
        "$rt" delete -f "$id"
        return 3
    fi
    "$rt" delete -f "$id"
}

lowlevel_gpu() {
    local rt=$1 id=gpu-$1
    make_bundle "$W/$id" "$rt" "$id" hook "AMD_VISIBLE_DEVICES=$REQ"
    (cd "$W/$id" && "$rt" --systemd-cgroup run -d "$id" </dev/null >"$W/$id.out" 2>&1) \
        || { cat "$W/$id.out"; fail "$rt run"; }
    local pid
    pid=$("$rt" state "$id" | jq -r .pid)
    show_cgroup "$pid"
    local ok=0
    expect_gpu_across_reload "$rt" "$WANT" "$rt" exec "$id" || ok=1
    echo '{"pids": {"limit": 200}}' > "$W/$id.res"
    "$rt" --systemd-cgroup update -r "$W/$id.res" "$id" || "$rt" update -r "$W/$id.res" "$id" || ok=1
    expect_gpu "$rt, after $rt update" "$WANT" "$rt" exec "$id" || ok=1
    # Re-applying the unit's properties. Where the runtime gave the scope a DeviceAllow list (crun
    # 1.21, runc), one more entry; where it gave none (crun 1.28: its pinned program, DevicePolicy
    # auto) a first entry would turn on an allow list of that one device for the container's
    # every device (the admin's restriction, not ours to widen): TasksMax alone there.
    if [ -n "$(systemctl show -P DeviceAllow "$rt-$id.scope")" ]; then
        systemctl set-property --runtime "$rt-$id.scope" TasksMax=300 DeviceAllow="/dev/null rw" || ok=1
    else
        log "$rt: the scope has no DeviceAllow ($(systemctl show -P BPFProgram "$rt-$id.scope")): TasksMax only"
        systemctl set-property --runtime "$rt-$id.scope" TasksMax=300 || ok=1
    fi
    sleep 1
    expect_gpu "$rt, after systemctl set-property" "$WANT" "$rt" exec "$id" || ok=1
    show_cgroup "$pid"
    expect_null "$rt, /dev/null still" "$rt" exec "$id" || ok=1
    "$rt" delete -f "$id"
    return $ok
}

lowlevel_no_request() {
    local rt=$1 id=none-$1
    make_bundle "$W/$id" "$rt" "$id" hook
    (cd "$W/$id" && "$rt" --systemd-cgroup run -d "$id" </dev/null >"$W/$id.out" 2>&1) \
        || { cat "$W/$id.out"; fail "$rt run"; }
    local ok=0
    expect_no_gpu "$rt, no request" "$rt" exec "$id" || ok=1
    "$rt" delete -f "$id"
    return $ok
}

# A slice above the container restricts devices (an admin's DevicePolicy): it is shared, the hook
# must not widen it, so the create fails with a message naming it, and nothing is left behind.
lowlevel_denied_above() {
    local rt=$1 id=above-$1
    mkdir -p /run/systemd/system
    printf '[Slice]\nDevicePolicy=closed\n' > /run/systemd/system/amdtest.slice
    systemctl daemon-reload
    make_bundle "$W/$id" "$rt" "$id" hook "AMD_VISIBLE_DEVICES=$REQ"
    jq '.linux.cgroupsPath = "amdtest.slice:'"$rt"':'"$id"'"' "$W/$id/config.json" > "$W/$id/c.json"
    mv "$W/$id/c.json" "$W/$id/config.json"
    local ok=0
    if (cd "$W/$id" && "$rt" --systemd-cgroup run -d "$id" </dev/null >"$W/$id.out" 2>&1); then
        echo "the create succeeded although amdtest.slice denies the GPU"
        "$rt" delete -f "$id"
        ok=1
    fi
    # runc shows the hook's stderr in its error; crun does not: the hook's log has it for both.
    grep -F "[$id]" /var/log/amd-container-hook.log >> "$W/$id.out" || true
    sed 's/^/  | /' "$W/$id.out"
    grep -q 'amdtest.slice' "$W/$id.out" && grep -q 'is not the container.s own' "$W/$id.out" \
        || { echo "the error does not name the slice and why"; ok=1; }
    grep -q 'CDI' "$W/$id.out" || { echo "the error does not say what works instead"; ok=1; }
    if systemctl list-units --all --no-legend "$rt-$id.scope" | grep -q .; then
        systemctl status --no-pager "$rt-$id.scope" || true
        echo "the container's scope is left behind"; ok=1
    fi
    "$rt" delete -f "$id" >/dev/null 2>&1 || true
    rm -f /run/systemd/system/amdtest.slice
    systemctl daemon-reload
    return $ok
}

run_test host-control-runc lowlevel_control runc
run_test host-control-crun lowlevel_control crun
run_test runc-systemd lowlevel_gpu runc
run_test crun-systemd lowlevel_gpu crun
run_test runc-systemd-no-request lowlevel_no_request runc
run_test crun-systemd-no-request lowlevel_no_request crun
run_test runc-systemd-denied-above lowlevel_denied_above runc
run_test crun-systemd-denied-above lowlevel_denied_above crun

# ---- Podman: crun and the systemd cgroup manager (its defaults here)
podman_setup() {
    podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Host.CgroupsVersion}}'
    podman image exists localhost/bb:test || podman import -q "$W/rootfs.tar" localhost/bb:test >/dev/null
    mkdir -p "$W/hooks-prestart" "$W/hooks-precreate"
    amd-ctk runtime configure --runtime podman --hooks-dir "$W/hooks-prestart"
    amd-ctk runtime configure --runtime podman --precreate --hooks-dir "$W/hooks-precreate"
    # The one test-only change to the registrations: the fake sysfs's variable in the hook's env.
    local f
    for f in "$W"/hooks-pre*/*.json; do
        jq --arg fe "$FAKE_SYSFS_ENV" '.hook.env += [$fe]' "$f" > "$f.new" && mv "$f.new" "$f"
    done
    cat "$W"/hooks-pre*/*.json
    SYSTEMD_DEVICE_VERIFY_SYSFS=0 amd-ctk cdi generate --no-hooks --output /etc/cdi/amd.json
}

# podman_gpu WHAT HOOKS_DIR|- RUN_ARGS...: the hooks directory is a global option of every podman
# command that creates the container (run, restart), as it is for an engine configured with it.
podman_gpu() {
    local what=$1 hooks=$2; shift 2
    local c out
    podman() {
        if [ "$hooks" = - ]; then command podman "$@"; else command podman --hooks-dir "$hooks" "$@"; fi
    }
    c=$(podman run -d --network none "$@" localhost/bb:test sleep 3600) || fail "$what: podman run"
    show_cgroup "$(podman inspect -f '{{.State.Pid}}' "$c")"
    local ok=0
    expect_gpu_across_reload "$what" "$WANT" podman exec "$c" || ok=1
    if ! out=$(podman update --pids-limit 200 "$c" 2>&1); then
        echo "  | $out"
        if grep -q "$UPDATE_REFUSED" <<<"$out" && [ -e "$W/podman-update-refuses-cdi" ]; then
            log "$what: podman update refused, as for CDI (podman-update-control); podman restart"
            podman restart -t 0 "$c" >/dev/null || ok=1
            expect_gpu "$what, after podman restart" "$WANT" podman exec "$c" || ok=1
        else
            ok=1
        fi
    elif [ -e "$W/podman-update-drops-cdi" ]; then
        log "$what: after podman update: as CDI does here (podman-update-control), not held; podman restart"
        podman restart -t 0 "$c" >/dev/null || ok=1
        expect_gpu "$what, after podman update + restart" "$WANT" podman exec "$c" || ok=1
    else
        expect_gpu "$what, after podman update" "$WANT" podman exec "$c" || ok=1
    fi
    expect_null "$what, /dev/null still" podman exec "$c" || ok=1
    podman rm -f -t 0 "$c" >/dev/null
    return $ok
}

podman_no_request() {
    local c ok=0
    c=$(podman --hooks-dir "$W/hooks-prestart" run -d --network none localhost/bb:test sleep 3600)
    expect_no_gpu "podman, no request" podman exec "$c" || ok=1
    podman rm -f -t 0 "$c" >/dev/null
    return $ok
}

# Control: what does `podman update` keep? A device Podman itself adds (--device) must survive
# (else Podman is broken here: FAIL). crun 1.28 (systemd driver, its device program pinned for
# systemd: BPFProgram) refuses the update of a container whose devices differ from Podman's stored
# config, as a CDI container's do ("updating device access list not supported when using
# BPFProgram"): ENGINE-LIMIT, and a GPU case refused the same way checks `podman restart` instead. A device from CDI, Podman's own mechanism for our GPUs, is
# rebuilt away on Podman 5.4 + crun (podman update re-sends the device rules of the container's
# stored config, which never holds CDI or hook devices): then ENGINE-LIMIT, and our hook paths are
# held to what CDI does (after podman update, a podman restart gives the GPU back).
podman_update_control() {
    local c out
    c=$(podman run -d --network none --device /dev/dri/renderD133 --device /dev/kfd localhost/bb:test sleep 3600)
    expect_gpu "podman --device (control)" "/dev/kfd /dev/dri/renderD133" podman exec "$c"
    podman update --pids-limit 200 "$c" >/dev/null
    expect_gpu "podman --device (control), after podman update" "/dev/kfd /dev/dri/renderD133" podman exec "$c"
    podman rm -f -t 0 "$c" >/dev/null
    c=$(podman run -d --network none --device "amd.com/gpu=$REQ" localhost/bb:test sleep 3600)
    expect_gpu "podman CDI (control)" "$WANT" podman exec "$c"
    if ! out=$(podman update --pids-limit 200 "$c" 2>&1); then
        echo "  | $out"
        podman rm -f -t 0 "$c" >/dev/null
        grep -q "$UPDATE_REFUSED" <<<"$out" || fail "podman update of a CDI container"
        echo "ENGINE LIMIT: podman update refuses a container with CDI devices: $(podman --version), $(crun --version | head -n1)"
        touch "$W/podman-update-refuses-cdi"
        return 4
    fi
    if ! expect_gpu "podman CDI (control), after podman update" "$WANT" podman exec "$c"; then
        echo "ENGINE LIMIT: podman update takes CDI devices away: $(podman --version), $(crun --version | head -n1)"
        touch "$W/podman-update-drops-cdi"
        podman rm -f -t 0 "$c" >/dev/null
        return 4
    fi
    podman rm -f -t 0 "$c" >/dev/null
}

run_test podman-setup podman_setup
run_test podman-update-control podman_update_control
run_test podman-prestart podman_gpu "podman prestart" "$W/hooks-prestart" -e "AMD_VISIBLE_DEVICES=$REQ"
run_test podman-precreate podman_gpu "podman precreate" "$W/hooks-precreate" -e "AMD_VISIBLE_DEVICES=$REQ"
run_test podman-cdi podman_gpu "podman CDI" - --device "amd.com/gpu=$REQ"
run_test podman-no-request podman_no_request

# Non-root users through CDI on Podman 5.4, which reads cdiVersion 0.7.0 (README, "Non-root
# container users"): on kfd and render nodes 0660 root:109 (as on Ubuntu and RHEL), the spec's
# additionalGids give a uid-1000 process the GPU's kfd and render node, the card node keeps the
# host's policy (0660 root:44: Permission denied); the control, a spec written with
# --no-additional-gids (0.5.0), leaves the user without kfd and render. The nodes' modes and the
# spec are put back afterwards.
podman_cdi_nonroot() {
    local spec=/etc/cdi/amd.json ok=0 out render=/dev/dri/renderD133 card=/dev/dri/card6
    cp "$spec" "$W/amd.json.before-nonroot"
    chmod 0660 /dev/kfd /dev/dri/renderD*
    ls -l /dev/kfd "$render" "$card"
    probe_user() {
        podman run --rm --network none --user 1000:1000 --device "amd.com/gpu=$REQ" \
            localhost/bb:test sh -c "$PROBE" probe /dev/kfd "$render" "$card" 2>&1
    }
    SYSTEMD_DEVICE_VERIFY_SYSFS=0 amd-ctk cdi generate --no-hooks --output "$spec"
    jq -c '{cdiVersion, additionalGids: .containerEdits.additionalGids, shared: .containerEdits.deviceNodes}' "$spec"
    podman run --rm --network none --user 1000:1000 --device "amd.com/gpu=$REQ" localhost/bb:test \
        sh -c 'id; ls -ln /dev/kfd /dev/dri' 2>&1 | sed 's/^/  container | /'
    [ "$(jq -r .cdiVersion "$spec")" = 0.7.0 ] || { echo "cdiVersion is not 0.7.0"; ok=1; }
    [ "$(jq -c .containerEdits.additionalGids "$spec")" = "[109]" ] || { echo "additionalGids is not [109]"; ok=1; }
    out=$(probe_user) || true
    echo "$out" | sed 's/^/  | /'
    if grep -qx "/dev/kfd usable" <<<"$out" && grep -qx "$render usable" <<<"$out" \
        && grep -q "^$card other:.*Permission denied" <<<"$out"; then
        log "uid 1000 with the 0.7.0 spec: kfd and $render usable, $card refused by its mode"
    else
        echo "uid 1000 with additionalGids: want kfd and $render usable, $card Permission denied"; ok=1
    fi
    SYSTEMD_DEVICE_VERIFY_SYSFS=0 amd-ctk cdi generate --no-hooks --no-additional-gids --output "$spec"
    jq -c '{cdiVersion, additionalGids: .containerEdits.additionalGids}' "$spec"
    out=$(probe_user) || true
    echo "$out" | sed 's/^/  | /'
    if grep -q "^/dev/kfd other:.*Permission denied" <<<"$out" \
        && grep -q "^$render other:.*Permission denied" <<<"$out"; then
        log "control, --no-additional-gids: kfd and $render Permission denied for uid 1000"
    else
        echo "control: without additionalGids uid 1000 must get Permission denied"; ok=1
    fi
    chmod 0666 /dev/kfd /dev/dri/renderD*
    cp "$W/amd.json.before-nonroot" "$spec"
    return $ok
}
run_test podman-cdi-nonroot podman_cdi_nonroot

# ---- rootless Podman (tests/vm/rootless.sh)
run_rootless_tests

# ---- Docker: systemd cgroup driver, configured by amd-ctk runtime configure
docker_setup() {
    mkdir -p /etc/docker
    cat > /etc/docker/daemon.json <<'JSON'
{
  "exec-opts": ["native.cgroupdriver=systemd"],
  "iptables": false,
  "ip6tables": false,
  "bridge": "none"
}
JSON
    amd-ctk runtime configure --runtime docker   # features.cdi on by default (Docker < 28.2 needs it)
    cat /etc/docker/daemon.json
    systemctl start docker.service
    docker info --format '{{.CgroupDriver}} cgroup v{{.CgroupVersion}} runtimes: {{range $k, $v := .Runtimes}}{{$k}} {{end}}'
    docker import "$W/rootfs.tar" bb:test >/dev/null
}

docker_gpu() {
    local c ok=0
    c=$(docker run -d --runtime=amd --network none -e "AMD_VISIBLE_DEVICES=$REQ" bb:test sleep 3600) \
        || fail "docker run"
    show_cgroup "$(docker inspect -f '{{.State.Pid}}' "$c")"
    expect_gpu_across_reload "docker" "$WANT" docker exec "$c" || ok=1
    docker update --cpus 1 "$c" >/dev/null || ok=1
    expect_gpu "docker, after docker update --cpus 1" "$WANT" docker exec "$c" || ok=1
    docker restart -t 0 "$c" >/dev/null || ok=1
    expect_gpu "docker, after docker restart" "$WANT" docker exec "$c" || ok=1
    reload_systemd
    expect_gpu "docker, restarted, after daemon-reload" "$WANT" docker exec "$c" || ok=1
    expect_null "docker, /dev/null still" docker exec "$c" || ok=1
    docker rm -f "$c" >/dev/null
    return $ok
}

# Docker's CDI (26.1 reads specs only with features.cdi on, which `amd-ctk runtime configure`
# set in docker_setup): after `amd-ctk cdi generate` (with our hook, as it writes by default),
# `--device amd.com/gpu=NAME` by index, unique id and PCI address gives exactly GPU 3, and the
# spec's hook runs under Docker (its log line names the container and GPU 3). Controls: a name the
# spec lacks is refused by Docker; a container without a CDI device gets no GPU and no hook line.
# The spec /etc/cdi/amd.json is put back afterwards.
docker_cdi_names() {
    local spec=/etc/cdi/amd.json log=/var/log/amd-container-hook.log ok=0 c name names nodes
    jq -e '.features.cdi == true' /etc/docker/daemon.json >/dev/null \
        || fail "amd-ctk runtime configure did not turn Docker's CDI on: $(cat /etc/docker/daemon.json)"
    [ ! -e "$spec" ] || cp "$spec" "$W/amd.json.before-docker-cdi"
    SYSTEMD_DEVICE_VERIFY_SYSFS=0 amd-ctk cdi generate --output "$spec"
    jq -c '.containerEdits.hooks' "$spec"
    jq -e '[.containerEdits.hooks[].path] | index("'"$HOOK_PATH"'")' "$spec" >/dev/null \
        || fail "the spec does not run $HOOK_PATH"
    # GPU 3's names: the devices whose nodes are exactly card6 and renderD133.
    nodes='["/dev/dri/card6","/dev/dri/renderD133"]'
    names=$(jq -r --argjson n "$nodes" \
        '.devices[] | select([.containerEdits.deviceNodes[].path] | sort == $n) | .name' "$spec")
    echo "GPU $REQ is: $(echo $names)"
    local index uid pci
    index=$(grep -x "$REQ" <<<"$names") || fail "no index name $REQ"
    uid=$(grep -m1 '^0x' <<<"$names") || fail "no unique id name for GPU $REQ"
    pci=$(grep -m1 -E '^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$' <<<"$names") || fail "no PCI name for GPU $REQ"
    for name in "$index" "$uid" "$pci"; do
        c=$(docker run -d --network none --device "amd.com/gpu=$name" bb:test sleep 3600) \
            || { fail "docker run --device amd.com/gpu=$name"; ok=1; continue; }
        expect_gpu "docker CDI amd.com/gpu=$name" "$WANT" docker exec "$c" || ok=1
        if grep -F "[$c]" "$log" | grep "CDI: has GPU $REQ (/dev/dri/card6 /dev/dri/renderD133)" >/dev/null; then
            log "docker CDI amd.com/gpu=$name: the hook ran: $(grep -F "[$c]" "$log" | grep 'CDI: has GPU' | tail -n1)"
        else
            echo "  no hook line 'CDI: has GPU $REQ' for container $c"; ok=1
        fi
        docker rm -f "$c" >/dev/null
    done
    if docker run --rm --network none --device amd.com/gpu=0x0000000000000bad bb:test true 2>"$W/docker-cdi.err"; then
        echo "  control: docker ran a container with a CDI name the spec does not have"; ok=1
    else
        log "control: unknown CDI name refused: $(tail -n1 "$W/docker-cdi.err")"
    fi
    c=$(docker run -d --network none bb:test sleep 3600)
    expect_gpu "docker, no CDI device (control)" "" docker exec "$c" || ok=1
    if grep -F "[$c]" "$log" | grep "CDI:" >/dev/null; then
        echo "  control: a hook line for a container without a CDI device"; ok=1
    fi
    docker rm -f "$c" >/dev/null
    if [ -e "$W/amd.json.before-docker-cdi" ]; then cp "$W/amd.json.before-docker-cdi" "$spec"; else rm -f "$spec"; fi
    return $ok
}

docker_no_request() {
    local c ok=0
    c=$(docker run -d --runtime=amd --network none bb:test sleep 3600)
    expect_no_gpu "docker, no request" docker exec "$c" || ok=1
    docker rm -f "$c" >/dev/null
    return $ok
}

# Docker's own `--gpus` (28.3+: an AMD device driver, registered when dockerd finds
# amd-container-runtime on its PATH, that sets AMD_VISIBLE_DEVICES in the container's env; the
# runtime `amd` still has to run the container: `--runtime=amd` or `amd` as the default runtime).
# Docker before 28.3 has no AMD driver: its own "could not select device driver" error is
# ENGINE-LIMIT (and anything else a FAIL).
docker_gpus() {
    local how=$1 rt=() c ok=0 out
    if [ "$how" = runtime ]; then
        rt=(--runtime=amd)
    else
        amd-ctk runtime configure --runtime docker --set-as-default
        systemctl restart docker.service
        docker info --format 'default runtime: {{.DefaultRuntime}}'
        [ "$(docker info --format '{{.DefaultRuntime}}')" = amd ] || fail "amd is not the default runtime"
    fi
    local dv
    dv=$(docker version --format '{{.Server.Version}}')
    if ! version_at_least "$dv" 28.3; then
        if out=$(docker run --rm "${rt[@]}" --network none --gpus all bb:test true 2>&1); then
            echo "docker $dv ran --gpus all"; return 1
        fi
        echo "  | $out"
        grep -q 'could not select device driver' <<<"$out" || fail "docker $dv: not Docker's own --gpus error"
        echo "ENGINE LIMIT: docker $dv has no AMD --gpus driver (28.3+)"
        return 4
    fi
    c=$(docker run -d "${rt[@]}" --network none --gpus '"device=3"' bb:test sleep 3600) || fail "docker run --gpus device=3"
    expect_gpu_across_reload "docker --gpus device=3 ($how)" "$(gpu_nodes 3)" docker exec "$c" || ok=1
    docker rm -f "$c" >/dev/null
    expect_gpu "docker --gpus 2 ($how)" "$(gpu_nodes 0 1)" docker run --rm "${rt[@]}" --network none --gpus 2 bb:test || ok=1
    expect_gpu "docker --gpus all ($how)" "$(gpu_nodes all)" docker run --rm "${rt[@]}" --network none --gpus all bb:test || ok=1
    expect_no_gpu "docker --gpus 0 ($how, void)" docker run --rm "${rt[@]}" --network none --gpus 0 bb:test || ok=1
    if [ "$how" = default ]; then
        expect_gpu "docker, amd by default, no request" "" docker run --rm --network none bb:test || ok=1
    fi
    return $ok
}

# CDI, Docker's own mechanism (features.cdi: 28.2+ on by default; `amd-ctk runtime configure`
# in docker-setup sets it for older ones); the spec generated in podman-setup.
docker_cdi() {
    local ok=0 c
    c=$(docker run -d --network none --device "amd.com/gpu=$REQ" bb:test sleep 3600) || fail "docker run --device amd.com/gpu=$REQ"
    expect_gpu_across_reload "docker CDI" "$WANT" docker exec "$c" || ok=1
    docker rm -f "$c" >/dev/null
    return $ok
}

run_test docker-setup docker_setup
run_test docker-systemd docker_gpu
run_test docker-no-request docker_no_request
run_test docker-cdi docker_cdi
run_test docker-cdi-names docker_cdi_names
run_test docker-gpus-runtime docker_gpus runtime
run_test docker-gpus-default docker_gpus default

# ---- Kubernetes node: containerd's CRI driven as kubelet drives it (tests/vm/cri.sh)
run_cri_tests

# ---- CDI refresh by the real udevd (last: it takes a fake GPU away; tests/vm/cdi-refresh.sh)
run_test cdi-refresh-udev cdi_refresh_udev

echo
echo "== hook log"
cat /var/log/amd-container-hook.log 2>/dev/null | tail -n 60
echo
echo "== summary"
printf '%s\n' "${RESULTS[@]}"
