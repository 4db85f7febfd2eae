//! podman 4.3 consumes a spec written by `amd-ctk cdi generate` on fake
//! hardware: `--device amd.com/gpu=N` gives the container exactly that GPU's
//! nodes plus /dev/kfd, and the device cgroup lets it open them. The spec's
//! hook (`amd-container-hook --cdi`) enforces the GPU tracker on that path:
//! a GPU asked for by index, unique id or PCI address name is the same GPU.

use amd_ctk_e2e::engines::podman_ready;
use amd_ctk_e2e::*;

#[test]
fn podman_uses_generated_cdi_spec_for_one_gpu_and_for_all() {
    if !podman_ready() {
        return;
    }
    let work = scratch("podman-cdi");
    let script = format!(
        r#"{PODMAN_SETUP}
private_etc
AMD_CTK_CDI_STATE="$W/cdi-specs.json" SYSTEMD_DEVICE_VERIFY_SYSFS=0 "$BIN/amd-ctk" cdi generate --no-hooks --output /etc/cdi/amd.json
bb_image
probe='for n in /dev/kfd /dev/dri/card1 /dev/dri/renderD128 /dev/dri/renderD129; do
         cat $n 2>&1 | sed "s|^|probe |"; done; ls /dev/dri | sed "s|^|dri |"'
echo "== gpu=0"
podman run --rm --network none --pids-limit 0 --device amd.com/gpu=0 localhost/bb:test sh -c "$probe"
echo "== gpu=all"
podman run --rm --network none --pids-limit 0 --device amd.com/gpu=all localhost/bb:test sh -c "ls /dev/dri | sed 's|^|dri |'"
echo "== none"
podman run --rm --network none --pids-limit 0 localhost/bb:test sh -c "ls /dev/dri 2>&1 | sed 's|^|dri |'; cat /dev/kfd 2>&1 | sed 's|^|probe |'"
"#
    );
    let out = fakehw_sh("mi300x-8", "v1", &work, &script);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    let section_lines = |name: &str| -> Vec<String> {
        section(&stdout, name).lines().map(str::to_string).collect()
    };
    let gpu0 = section_lines("gpu=0");
    for allowed in ["/dev/kfd", "/dev/dri/card1", "/dev/dri/renderD128"] {
        let line = format!("probe cat: can't open '{allowed}': No such device or address");
        assert!(
            gpu0.contains(&line),
            "{allowed} must be present and allowed:\n{stdout}"
        );
    }
    assert!(
        gpu0.contains(
            &"probe cat: can't open '/dev/dri/renderD129': No such file or directory".to_string()
        ),
        "GPU 1's node must be absent:\n{stdout}"
    );
    let dri = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("dri "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(dri(&gpu0), ["card1", "renderD128"]);
    let mut all = dri(&section_lines("gpu=all"));
    all.sort();
    let mut expected: Vec<String> = (1..=8)
        .map(|i| format!("card{i}"))
        .chain((128..136).map(|i| format!("renderD{i}")))
        .collect();
    expected.sort();
    assert_eq!(all, expected);
    let none = section_lines("none");
    assert!(
        none.iter().any(|l| l.contains("No such file or directory")),
        "{stdout}"
    );
    assert!(
        !none
            .iter()
            .any(|l| l.starts_with("dri card") || l.starts_with("dri render")),
        "{stdout}"
    );
}

/// Tracker on, GPU 3 exclusive: A holds it through `amd.com/gpu=3`; B asks
/// for it by its unique id name and is refused, naming A; A removed (the
/// spec's poststop releases it, as the hook's log says) → C gets exactly
/// GPU 3 by its PCI name. Controls: D asks for GPU 4 by unique id while A
/// holds GPU 3 (not refused: the refusal is about GPU 3); a plain spec
/// (`--no-hooks`) has no hook, so E is not tracked.
#[test]
fn cdi_hook_enforces_the_gpu_tracker_for_every_name_form() {
    if !podman_ready() {
        return;
    }
    let work = scratch("podman-cdi-tracker");
    let script = format!(
        r#"{PODMAN_SETUP}
private_etc
cat > "$W/config.toml" <<CONF
[hook]
log-file = "$W/hook.log"
[runtime]
hook-path = "$BIN/amd-container-hook"
hook-env = ["SYSTEMD_DEVICE_VERIFY_SYSFS=0"]
[gpu-tracker]
state-file = "$W/tracker.json"
CONF
export AMD_CTK_CONFIG="$W/config.toml" AMD_CTK_CDI_STATE="$W/cdi-specs.json" SYSTEMD_DEVICE_VERIFY_SYSFS=0
"$BIN/amd-ctk" cdi generate --output /etc/cdi/amd.json >/dev/null
"$BIN/amd-ctk" gpu-tracker enable >/dev/null
"$BIN/amd-ctk" gpu-tracker 3 exclusive >/dev/null
uid3=$("$BIN/amd-ctk" gpu list --format json | jq -r '.gpus[3].unique_id')
uid4=$("$BIN/amd-ctk" gpu list --format json | jq -r '.gpus[4].unique_id')
pci3=$("$BIN/amd-ctk" gpu list --format json | jq -r '.gpus[3].pci_address')
echo "uid3 $uid3"
echo "pci3 $pci3"
bb_image
run() {{ podman run --network none --pids-limit 0 "$@"; }}
a=$(run -d --device amd.com/gpu=3 localhost/bb:test sleep 300)
echo "A $a"
echo "== B"
run --rm --device "amd.com/gpu=$uid3" localhost/bb:test true 2>&1 || echo "exit $?"
echo "== D"
run --rm --device "amd.com/gpu=$uid4" localhost/bb:test sh -c 'ls /dev/dri' 2>&1 || echo "exit $?"
echo "== status"
"$BIN/amd-ctk" gpu-tracker status
podman rm -f -t 0 "$a" >/dev/null
# Podman may run the poststop hooks in the container's cleanup, after rm returns.
for _ in $(seq 100); do grep -q "released the GPUs of $a" "$W/hook.log" 2>/dev/null && break; sleep 0.1; done
echo "== log after rm"
cat "$W/hook.log"
echo "== C"
run --rm --device "amd.com/gpu=$pci3" localhost/bb:test sh -c 'ls /dev/dri' 2>&1 || echo "exit $?"
echo "== plain"
# A kind of its own: Podman's CDI cache may still hold the hooked amd.com/gpu spec.
"$BIN/amd-ctk" cdi generate --no-hooks --class plain --output /etc/cdi/amd-plain.json >/dev/null
"$BIN/amd-ctk" cdi validate --path /etc/cdi/amd-plain.json || true
e=$(run -d --device amd.com/plain=3 localhost/bb:test sleep 300)
"$BIN/amd-ctk" gpu-tracker status
podman rm -f -t 0 "$e" >/dev/null
echo "== end"
"#
    );
    let out = fakehw_sh("mi300x-8", "v1", &work, &script);
    let stdout = text(&out.stdout);
    let all = format!("stdout:\n{stdout}\nstderr:\n{}", text(&out.stderr));
    assert!(out.status.success(), "{all}");
    let sections = sections(&stdout);
    let value = |key: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key}:\n{all}"))
            .to_string()
    };
    let (a, uid3, pci3) = (value("A"), value("uid3"), value("pci3"));
    assert!(uid3.starts_with("0x") && pci3.contains(':'), "{all}");
    let b = &sections["B"];
    assert!(b.contains("exit "), "B must fail:\n{all}");
    assert!(
        b.contains("GPU 3 is exclusive and held by container") && b.contains(&a),
        "the refusal names A:\n{all}"
    );
    let d = &sections["D"];
    assert!(!d.contains("exit "), "GPU 4 is free:\n{all}");
    assert_eq!(
        d.lines().collect::<Vec<_>>(),
        ["card2", "renderD129"],
        "{all}"
    );
    assert!(
        tracker_row(&sections["status"], 3).contains(&a[..12]),
        "{all}"
    );
    let log = &sections["log after rm"];
    assert!(
        log.contains(&format!(
            "GPU tracker: released the GPUs of {a} at poststop"
        )),
        "the release came from poststop:\n{all}"
    );
    assert!(log.contains("CDI: has GPU 3 "), "{all}");
    let c = &sections["C"];
    assert!(!c.contains("exit "), "C gets GPU 3 once A is gone:\n{all}");
    assert_eq!(
        c.lines().collect::<Vec<_>>(),
        ["card6", "renderD133"],
        "{all}"
    );
    let plain = &sections["plain"];
    assert!(plain.contains("(plain: no amd-container-hook"), "{all}");
    assert!(
        tracker_row(plain, 3).contains("Exclusive") && tracker_row(plain, 3).ends_with('-'),
        "a plain spec's container is not tracked:\n{all}"
    );
}
