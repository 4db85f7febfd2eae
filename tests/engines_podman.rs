//! podman 4.3 with the hooks JSON installed by `amd-ctk runtime configure
//! --runtime podman --hooks-dir D`, inside the fake-hardware mount namespace
//! (tests/fakehw/): `podman --hooks-dir D run -e AMD_VISIBLE_DEVICES=0` gets
//! exactly GPU 0's nodes and /dev/kfd, allowed by the device cgroup; without
//! the variable nothing; after `--remove` nothing either. Both registrations:
//! the live hook (`prestart`) and Podman's `precreate` spec filter
//! (`--precreate`); cgroup v1 and v2.
//!
//! The device oracle inside a container (README.md, "Testing without a GPU"): a node
//! that is absent gives `No such file or directory`, one the device cgroup
//! allows `No such device or address` (no driver on this host).

use amd_ctk_e2e::engines::*;
use amd_ctk_e2e::probe::*;
use amd_ctk_e2e::runc::Cgroup;
use amd_ctk_e2e::*;
use serde_json::{json, Value};
use std::time::Instant;

fn ready() -> bool {
    podman_ready()
        && require(
            have("umockdev-run") && have("busybox") && have("python3"),
            "umockdev-run, busybox and python3 (apt-get install umockdev busybox-static python3)",
        )
}

/// Runs in the namespace after PODMAN_SETUP, before each script: podman's
/// host state kept in the namespace, `D` the hooks directory, `PROBE` and
/// `TARGETS` from [`write_probe`].
const PRIVATE_STATE: &str = r#"
# What podman writes on the host despite --root/--runroot (the blob info cache
# /var/lib/containers/cache, runc's state under /run/runc) stays in the
# namespace: /var/lib gets an overlay whose upper layer is under $W, /run a
# fresh tmpfs.
mkdir -p "$W/var-lib/up" "$W/var-lib/work"
mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$W/var-lib/up,workdir=$W/var-lib/work" /var/lib
mount -t tmpfs -o mode=755 podman-run /run
D=$W/hooks.d
PROBE=$(cat "$W/probe.sh")
TARGETS=$(cat "$W/probe-targets")
"#;

/// Runs after PRIVATE_STATE. `@MODE@` is `--precreate` or empty, `@FILE@`
/// the registration file amd-ctk installs for it.
const SCRIPT: &str = r#"# --pids-limit 0: on cgroup v2 this host's cgroup2 mount has no pids
# controller (it is bound to v1); harmless on v1.
probe_run() {
    podman --hooks-dir "$D" run --rm --network none --pids-limit 0 "$@" localhost/bb:test \
        sh -c "$PROBE" probe $TARGETS
}
configure() {
    "$BIN/amd-ctk" runtime configure --runtime podman --hooks-dir "$D" \
        --hook-path "$BIN/amd-container-hook" "$@"
}

echo "== configure"
configure @MODE@
echo "== installed"
cat "$D/@FILE@"
echo "== files"
ls -A "$D"
# Test-only: the shipped registration has env PATH only. The fake /sys needs
# SYSTEMD_DEVICE_VERIFY_SYSFS=0 for libudev (tests/fakehw/README.md; the
# product never sets it), and AMD_CTK_CONFIG points the hook at the test's
# config (log file under $W).
python3 - "$D/@FILE@" "AMD_CTK_CONFIG=$W/amd-container-toolkit.toml" <<'PY'
import json, sys
path, config = sys.argv[1], sys.argv[2]
doc = json.load(open(path))
doc["hook"]["env"] += ["SYSTEMD_DEVICE_VERIFY_SYSFS=0", config]
json.dump(doc, open(path, "w"), indent=2)
PY

bb_image
echo "== gpu0"
probe_run -e AMD_VISIBLE_DEVICES=0
echo "== unset"
probe_run
echo "== remove"
configure @MODE@ --remove
echo "== files after remove"
ls -A "$D"
echo "== gpu0 after remove"
probe_run -e AMD_VISIBLE_DEVICES=0
echo "== end"
echo "== host writes"
cd "$W/var-lib/up" && find . -mindepth 1 | sort
"#;

/// A podman script run on fake mi300x-8 hardware (must succeed): its
/// `== NAME` sections, the hook's log, and everything for failure messages.
struct PodmanRun {
    sections: std::collections::BTreeMap<String, String>,
    hook_log: String,
    all: String,
}

impl PodmanRun {
    fn new(work: &std::path::Path, cgroup: &str, script: &str, log: &std::path::Path) -> PodmanRun {
        let out = fakehw_sh("mi300x-8", cgroup, work, script);
        let stdout = text(&out.stdout);
        let hook_log = std::fs::read_to_string(log).unwrap_or_default();
        let all = format!(
            "{}\n--- stdout\n{stdout}--- stderr\n{}--- hook log\n{hook_log}",
            out.status,
            text(&out.stderr)
        );
        assert!(out.status.success(), "{all}");
        PodmanRun {
            sections: sections(&stdout),
            hook_log,
            all,
        }
    }

    fn section(&self, name: &str) -> &str {
        self.sections
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no section {name}: {}", self.all))
    }
}

fn scenario(cg: Cgroup, precreate: bool) {
    let start = Instant::now();
    let (mode, file, stage) = if precreate {
        (
            "--precreate",
            "amd-container-toolkit-precreate.json",
            "precreate",
        )
    } else {
        ("", "amd-container-toolkit.json", "prestart")
    };
    let work = scratch(&format!("engines-podman-{stage}-{cg}"));
    write_probe(&work);
    let log = work.join("hook.log");
    std::fs::write(
        work.join("amd-container-toolkit.toml"),
        toolkit_config(&log, ""),
    )
    .unwrap();
    let script = format!(
        "{PODMAN_SETUP}\n{PRIVATE_STATE}{}",
        SCRIPT.replace("@MODE@", mode).replace("@FILE@", file)
    );
    let run = PodmanRun::new(&work, &cg.to_string(), &script, &log);
    let (all, hook_log) = (&run.all, &run.hook_log);
    let section = |name: &str| run.section(name);

    // The registration: the shipped JSON with the hook under test.
    let installed: Value = serde_json::from_str(section("installed")).unwrap();
    assert_eq!(
        installed,
        json!({
            "version": "1.0.0",
            "hook": {
                "path": hook_bin(),
                "args": ["amd-container-hook", stage],
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
            },
            "when": {"always": true},
            // The live hook also runs at poststop (the GPU tracker's release).
            "stages": if precreate { json!([stage]) } else { json!([stage, "poststop"]) }
        }),
        "{all}"
    );
    assert_eq!(section("files"), format!("{file}\n"), "{all}");

    assert_gpu0_only(
        section("gpu0"),
        &format!("{stage} {cg}: AMD_VISIBLE_DEVICES=0"),
    );
    assert_no_gpu(
        section("unset"),
        &format!("{stage} {cg}: no AMD_VISIBLE_DEVICES"),
    );
    assert_eq!(
        section("files after remove"),
        "",
        "--remove leaves the hooks dir empty: {all}"
    );
    assert_no_gpu(
        section("gpu0 after remove"),
        &format!("{stage} {cg}: AMD_VISIBLE_DEVICES=0 after --remove"),
    );

    // Who gave the devices: the live hook logs one line for the one GPU
    // container it served (none after --remove); the precreate filter puts
    // them into the spec and runs no live injection, which would log.
    let gave: Vec<&str> = hook_log.lines().filter(|l| l.contains(": gave ")).collect();
    if precreate {
        assert!(
            gave.is_empty(),
            "no live injection in precreate mode: {all}"
        );
    } else {
        assert_eq!(gave.len(), 1, "{all}");
        assert!(
            gave[0].contains(
                "AMD_VISIBLE_DEVICES=0: gave /dev/kfd /dev/dri/card1 /dev/dri/renderD128"
            ),
            "{all}"
        );
    }
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("{stage} {cg}: {:.1?}", start.elapsed());
}

on_v1_and_v2!(
    /// `amd-ctk runtime configure --runtime podman --hooks-dir D` installs
    /// exactly amd-container-toolkit.json (stage prestart, hook path as given);
    /// `podman --hooks-dir D run -e AMD_VISIBLE_DEVICES=0` gets GPU 0's card1,
    /// renderD128 and /dev/kfd, allowed (ENXIO), GPU 1's absent, and the hook
    /// logs it; without the variable no /dev/kfd and no /dev/dri; after
    /// `--remove` D is empty and the variable gives nothing.
    prestart => prestart_scenario
);

fn prestart_scenario(cg: Cgroup) {
    scenario(cg, false);
}

on_v1_and_v2!(
    /// The same with `--precreate`: only amd-container-toolkit-precreate.json
    /// (stage precreate) is installed, the hook edits the spec (no live
    /// injection, nothing logged) and the container gets exactly GPU 0's nodes;
    /// `--remove` takes it away.
    precreate => precreate_scenario
);

fn precreate_scenario(cg: Cgroup) {
    scenario(cg, true);
}

/// The GPU tracker with the live hook (`prestart` + `poststop` hooks JSON):
/// the script, after PRIVATE_STATE. A holds exclusive GPU 0, B is refused
/// naming A, `podman rm -f A` releases at poststop, C gets GPU 0.
const TRACKER_SCRIPT: &str = r#""$BIN/amd-ctk" runtime configure --runtime podman --hooks-dir "$D" \
    --hook-path "$BIN/amd-container-hook" >/dev/null
python3 - "$D/amd-container-toolkit.json" "AMD_CTK_CONFIG=$W/amd-container-toolkit.toml" <<'PY'
import json, sys
path, config = sys.argv[1], sys.argv[2]
doc = json.load(open(path))
doc["hook"]["env"] += ["SYSTEMD_DEVICE_VERIFY_SYSFS=0", config]
json.dump(doc, open(path, "w"), indent=2)
PY
export AMD_CTK_CONFIG="$W/amd-container-toolkit.toml" SYSTEMD_DEVICE_VERIFY_SYSFS=0
ctk() { "$BIN/amd-ctk" gpu-tracker "$@" 2>&1 || echo "exit $?"; }
pod() { podman --hooks-dir "$D" "$@"; }
gpu0() { pod run --network none --pids-limit 0 -e AMD_VISIBLE_DEVICES=0 "$@"; }
bb_image
echo "== enable"; ctk enable; ctk 0 exclusive
echo "== a"
A=$(gpu0 -d --name tracker-a localhost/bb:test /bin/busybox sleep 300)
echo "$A"
echo "== status a"; ctk status
echo "== b"; gpu0 --name tracker-b localhost/bb:test true 2>&1 && echo "b ran" || echo "b refused"
echo "== b id"; pod inspect --format '{{.Id}}' tracker-b
echo "== status b"; ctk status
pod rm -f tracker-b >/dev/null 2>&1 || true
echo "== rm a"; pod rm -f -t 0 tracker-a >/dev/null
# Before any amd-ctk operation (which would reclaim a dead holder): does the
# state file still name A?
grep -c "$A" "$W/tracker/state.json" || true
echo "== status rm"; ctk status
echo "== c"; gpu0 --rm localhost/bb:test sh -c "$PROBE" probe $TARGETS
echo "== status c"; ctk status
echo "== end"
"#;

/// The GPU tracker under Podman with the hooks JSON (README.md, "GPU
/// tracker"): enabled, GPU 0 exclusive. `podman run -d -e
/// AMD_VISIBLE_DEVICES=0` (A) starts and holds GPU 0; B asking for GPU 0
/// fails to start, the error naming A's container id, and holds nothing;
/// `podman rm -f A` releases GPU 0 at `poststop` (the state file no longer
/// names A before any tracker command could reclaim it); C then
/// gets exactly GPU 0 and releases it when removed (`--rm`).
#[test]
fn tracker_exclusive_gpu_is_enforced_and_released_prestart() {
    if !ready() {
        return;
    }
    let start = Instant::now();
    let work = scratch("engines-podman-tracker");
    write_probe(&work);
    let log = work.join("hook.log");
    let state = work.join("tracker/state.json");
    std::fs::write(
        work.join("amd-container-toolkit.toml"),
        format!(
            "{}\n[gpu-tracker]\nstate-file = {:?}\n",
            toolkit_config(&log, ""),
            state.display().to_string()
        ),
    )
    .unwrap();
    let script = format!("{PODMAN_SETUP}\n{PRIVATE_STATE}{TRACKER_SCRIPT}");
    let run = PodmanRun::new(&work, "v1", &script, &log);
    let all = &run.all;
    let section = |name: &str| run.section(name);
    assert_eq!(
        section("enable"),
        "GPU Tracker has been enabled\nGPUs [0] have been made exclusive\n",
        "{all}"
    );
    let a = section("a").trim();
    assert_eq!(a.len(), 64, "A's id: {all}");
    assert!(
        tracker_row(section("status a"), 0).ends_with(&format!("Exclusive           {a}")),
        "GPU 0 exclusive, held by A: {all}"
    );
    let refused = section("b");
    assert!(refused.contains("b refused"), "B must not start: {all}");
    assert!(
        refused.contains(&format!("GPU 0 is exclusive and held by container {a}")),
        "B's error names A: {all}"
    );
    let b = section("b id").trim();
    assert!(!b.is_empty(), "{all}");
    assert!(
        !section("status b").contains(b),
        "a refused container holds nothing: {all}"
    );
    assert_eq!(
        section("rm a").trim(),
        "0",
        "`podman rm -f A` releases GPU 0 at poststop: {all}"
    );
    assert!(
        tracker_row(section("status rm"), 0).ends_with("Exclusive           -"),
        "GPU 0 free after A is removed: {all}"
    );
    assert_gpu0_only(section("c"), "C, after A was removed");
    assert!(
        tracker_row(section("status c"), 0).ends_with("Exclusive           -"),
        "C (--rm) released GPU 0: {all}"
    );
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("{:.1?}", start.elapsed());
}
