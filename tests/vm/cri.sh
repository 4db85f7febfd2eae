# The Kubernetes node tests of the VM suite (sourced by suite.sh after lib.sh; runs inside the test
# VM as root, after setup_fakehw, install_toolkit and podman-setup's CDI spec in /etc/cdi).
#
# Contract: containerd is configured as a kubeadm node has it (`containerd config default`, the
# runc runtime's SystemdCgroup = true) and then by `amd-ctk runtime configure --runtime containerd
# --cdi`; cri_setup checks that the file has the config version this containerd reads (1.7: 2,
# 2.x: 3) and that the running containerd's merged config (`containerd config dump`) holds the
# runtime `amd` and CDI. No registry: the sandbox (pause) image and the workload image are OCI
# archives made here from the suite's busybox rootfs and imported into the k8s.io namespace under
# the sandbox image name this containerd's config names. Then amd-ctk-cri-client (the payload's
# CRI client, tests/cri-client) makes kubelet's calls on containerd's CRI socket: RunPodSandbox
# (host network, cgroup parent kubepods-besteffort-podUID.slice as kubelet's systemd driver names
# it), CreateContainer, StartContainer, ExecSync probes, StopPodSandbox + RemovePodSandbox.
# shellcheck shell=bash

CRI=amd-ctk-cri-client
CRI_IMAGE=localhost/bb:cri

# make_oci_archive OUT NAME CMD...: an OCI image archive of the suite's busybox rootfs whose
# config runs CMD, named NAME (the annotation containerd's importer takes as the full name).
make_oci_archive() {
    local out=$1 name=$2; shift 2
    local d=$W/oci-$$ layer cfg man ls cs ms
    rm -rf "$d"
    mkdir -p "$d/blobs/sha256"
    layer=$(sha256sum "$W/rootfs.tar" | cut -d' ' -f1)
    ls=$(stat -c %s "$W/rootfs.tar")
    cp "$W/rootfs.tar" "$d/blobs/sha256/$layer"
    jq -nc --argjson cmd "$(printf '%s\n' "$@" | jq -R . | jq -sc .)" --arg diff "sha256:$layer" \
        '{architecture: "amd64", os: "linux",
          config: {Cmd: $cmd, Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
          rootfs: {type: "layers", diff_ids: [$diff]}}' > "$d/config"
    cfg=$(sha256sum "$d/config" | cut -d' ' -f1); cs=$(stat -c %s "$d/config")
    mv "$d/config" "$d/blobs/sha256/$cfg"
    jq -nc --arg c "sha256:$cfg" --argjson cs "$cs" --arg l "sha256:$layer" --argjson ls "$ls" \
        '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
          layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $l, size: $ls}]}' \
        > "$d/manifest"
    man=$(sha256sum "$d/manifest" | cut -d' ' -f1); ms=$(stat -c %s "$d/manifest")
    mv "$d/manifest" "$d/blobs/sha256/$man"
    jq -nc --arg m "sha256:$man" --argjson ms "$ms" --arg n "$name" \
        '{schemaVersion: 2, manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: $m, size: $ms, platform: {architecture: "amd64", os: "linux"},
          annotations: {"io.containerd.image.name": $n, "org.opencontainers.image.ref.name": $n}}]}' \
        > "$d/index.json"
    echo '{"imageLayoutVersion":"1.0.0"}' > "$d/oci-layout"
    tar -C "$d" -cf "$out" oci-layout index.json blobs
    rm -rf "$d"
}

cri_setup() {
    local conf=/etc/containerd/config.toml cv want plugin sandbox
    command -v "$CRI" >/dev/null || fail "$CRI is not in the payload"
    cv=$(containerd --version | awk '{print $3}'); cv=${cv#v}
    mkdir -p /etc/containerd
    containerd config default > "$conf"
    grep -q 'SystemdCgroup = false' "$conf" || fail "containerd $cv's default config has no SystemdCgroup = false"
    sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' "$conf"   # as kubeadm's docs say
    amd-ctk runtime configure --runtime containerd --cdi
    case $cv in
        1.*) want=2 plugin=io.containerd.grpc.v1.cri ;;
        *) want=3 plugin=io.containerd.cri.v1.runtime ;;
    esac
    local got
    got=$(sed -n 's/^version *= *\([0-9]*\).*/\1/p' "$conf")
    log "containerd $cv: config version $got (wants $want), CRI runtime plugin $plugin"
    [ "$got" = "$want" ] || fail "config.toml has version $got, containerd $cv reads $want"
    # containerd 1.7 writes the table names with double quotes, 2.x with single ones.
    local table="^ *\\[plugins\\.[\"']${plugin//./\\.}[\"']\\.containerd\\.runtimes\\.amd"
    grep -E "$table\\]" "$conf" || fail "no runtime amd under $plugin"
    grep -A12 -E "$table" "$conf" | sed 's/^/  | /'
    systemctl restart containerd.service
    # What containerd itself read: its merged config.
    containerd config dump > "$W/containerd-dump.toml" || fail "containerd config dump"
    grep -qE "BinaryName = [\"'].*amd-container-runtime[\"']" "$W/containerd-dump.toml" \
        || fail "containerd's merged config has no runtime with BinaryName amd-container-runtime"
    grep -q 'enable_cdi = true' "$W/containerd-dump.toml" || fail "containerd's merged config: CDI off"
    awk '/runtimes\.amd\.options\]/ {on=1; next} /^ *\[/ {on=0} on' "$W/containerd-dump.toml" \
        | grep -q 'SystemdCgroup = true' || fail "runtime amd does not use the systemd cgroup driver"
    sandbox=$(grep -o 'registry.k8s.io/pause:[0-9.]*' "$W/containerd-dump.toml" | head -n1)
    [ -n "$sandbox" ] || fail "no sandbox image in containerd's config"
    make_oci_archive "$W/pause.tar" "$sandbox" /bin/sleep 2147483647
    make_oci_archive "$W/bb-cri.tar" "$CRI_IMAGE" /bin/sleep 3600
    ctr -n k8s.io images import "$W/pause.tar" >/dev/null || fail "ctr import of $sandbox"
    ctr -n k8s.io images import "$W/bb-cri.tar" >/dev/null || fail "ctr import of $CRI_IMAGE"
    ctr -n k8s.io images ls -q
    "$CRI" version
}

# cri_pod NAME HANDLER: RunPodSandbox as kubelet does it (host network, a BestEffort pod's slice);
# sets POD and POD_ARGS (CreateContainer repeats the sandbox config).
cri_pod() {
    local name=$1 handler=$2
    POD_ARGS=(--pod-name "$name" --handler "$handler" --cgroup-parent "kubepods-besteffort-pod${name//-/_}.slice")
    POD=$("$CRI" run-pod "${POD_ARGS[@]}") || { fail "RunPodSandbox $name (handler '$handler')"; return 1; }
}

# cri_container NAME CREATE_ARGS...: CreateContainer + StartContainer in $POD; sets CID.
cri_container() {
    local name=$1; shift
    CID=$("$CRI" create --pod "$POD" "${POD_ARGS[@]}" --name "$name" --image "$CRI_IMAGE" "$@" \
        -- /bin/sleep 3600) || { fail "CreateContainer $name"; return 1; }
    "$CRI" start "$CID" || { fail "StartContainer $name"; return 1; }
    show_cgroup "$("$CRI" status "$CID" | jq -r .pid)"
}

# cri_gpu WHAT POD HANDLER WANT CREATE_ARGS...: a pod with one container, probed started and after
# daemon-reload, then torn down.
cri_gpu() {
    local what=$1 pod=$2 handler=$3 want=$4; shift 4
    local ok=0
    cri_pod "$pod" "$handler" || return 1
    cri_container main "$@" || { "$CRI" remove-pod "$POD"; return 1; }
    expect_gpu "CRI $what, started" "$want" "$CRI" exec "$CID" -- || ok=1
    expect_null "CRI $what" "$CRI" exec "$CID" -- || ok=1
    reload_systemd
    expect_gpu "CRI $what, after daemon-reload" "$want" "$CRI" exec "$CID" -- || ok=1
    "$CRI" remove-pod "$POD" || ok=1
    return $ok
}

# amd-ctk gpu-tracker with the fake sysfs's setting, as the hook has it.
tracker() { SYSTEMD_DEVICE_VERIFY_SYSFS=0 amd-ctk gpu-tracker "$@"; }

# The RuntimeClass `amd` (handler amd) with AMD_VISIBLE_DEVICES, and the GPU tracker: GPU 3
# exclusive is held by the pod's container while it lives, refused to a second one, and released
# when the pod is torn down.
cri_runtime_class() {
    local ok=0 out
    tracker enable
    tracker "$REQ" exclusive
    cri_pod amd-rc amd || return 1
    cri_container main --env "AMD_VISIBLE_DEVICES=$REQ" || { "$CRI" remove-pod "$POD"; return 1; }
    expect_gpu_across_reload "CRI handler amd" "$WANT" "$CRI" exec "$CID" -- || ok=1
    tracker status | tee "$W/tracker.txt"
    grep -q "^$REQ .*Exclusive *${CID:0:12}" "$W/tracker.txt" || { echo "GPU $REQ is not held by $CID"; ok=1; }
    if out=$("$CRI" create --pod "$POD" "${POD_ARGS[@]}" --name second --image "$CRI_IMAGE" \
        --env "AMD_VISIBLE_DEVICES=$REQ" -- /bin/sleep 3600 2>&1) \
        && "$CRI" start "$out" 2>"$W/second.err"; then
        echo "a second container got exclusive GPU $REQ"; ok=1
    else
        echo "  second container refused: $(cat "$W/second.err" 2>/dev/null) $out" | head -c 600; echo
    fi
    "$CRI" remove-pod "$POD" || ok=1
    tracker status | tee "$W/tracker.txt"
    grep -q "^$REQ .*Exclusive *-" "$W/tracker.txt" || { echo "GPU $REQ still held after the pod's teardown"; ok=1; }
    tracker disable
    return $ok
}

cri_no_request() {
    local ok=0
    cri_gpu "no request" none "" "" || ok=1
    cri_gpu "handler amd, no request" none-amd amd "" || ok=1
    return $ok
}

run_cri_tests() {
    run_test cri-setup cri_setup
    run_test cri-cdi-devices cri_gpu "CDI_devices amd.com/gpu=$REQ" cdi "" "$WANT" --cdi "amd.com/gpu=$REQ"
    run_test cri-cdi-annotation cri_gpu "annotation cdi.k8s.io/" cdi-ann "" "$WANT" \
        --annotation "cdi.k8s.io/amd-ctk-e2e=amd.com/gpu=$REQ"
    run_test cri-runtime-class cri_runtime_class
    run_test cri-no-request cri_no_request
}
