//! End-to-end tests of amd-container-hook under real runc (see harness/runc.rs):
//! busybox containers on the fake hardware of tests/fakehw/, cgroup v1 and v2,
//! the hook registered in config.json as an engine would register it.
//!
//! The device oracle inside a container (README.md, "Testing without a GPU"): opening a
//! node that is absent gives `No such file or directory`, one the device cgroup
//! denies `Operation not permitted`, one it allows (no driver here) `No such
//! device or address`.
//!
//! Each scenario that depends on the cgroup version is a module with a `v1`
//! and a `v2` test.

use amd_ctk_e2e::probe::{fakehw_node, Probe};
use amd_ctk_e2e::runc::{ready, Bundle, Cgroup, RunOutput, Session};
use amd_ctk_e2e::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Barrier};
use std::time::Instant;

/// mi300x-8: (card, render) minors of GPU index i (KFD/drm order is not PCI
/// order; see tests/golden/mi300x-8/gpu-list.txt).
const MI300X_8: [(u32, u32); 8] = [
    (1, 128),
    (5, 132),
    (3, 130),
    (6, 133),
    (2, 129),
    (7, 134),
    (4, 131),
    (8, 135),
];
/// mi300x-8: unique id of GPU 3.
const MI300X_8_GPU3_UNIQUE_ID: &str = "0x6500ec306064d48c";

fn gpu_paths(gpus: &[(u32, u32)]) -> Vec<String> {
    gpus.iter()
        .flat_map(|(c, r)| [format!("/dev/dri/card{c}"), format!("/dev/dri/renderD{r}")])
        .collect()
}

/// The node set a container asking for `gpus` must see: /dev/kfd + their
/// card and render nodes, sorted like [`Probe::paths`].
fn expected_nodes(gpus: &[(u32, u32)]) -> Vec<String> {
    let set: BTreeSet<String> = std::iter::once("/dev/kfd".to_string())
        .chain(gpu_paths(gpus))
        .collect();
    set.into_iter().collect()
}

/// Asserts the run succeeded and the container saw exactly `gpus`' nodes (and
/// /dev/kfd) with the host's major:minor, mode and gid, and that opening each
/// reached the (absent) driver: the device cgroup allows it. The bundle must
/// have probed `gpu_paths(gpus)` + /dev/kfd.
fn assert_exactly(out: &RunOutput, gpus: &[(u32, u32)]) -> Probe {
    assert_exactly_in(out, gpus, "")
}

/// [`assert_exactly`], with `what` (e.g. the request) in the messages.
fn assert_exactly_in(out: &RunOutput, gpus: &[(u32, u32)], what: &str) -> Probe {
    assert!(out.success(), "{what}: runc run failed: {out}");
    let probe = Probe::parse(&out.stdout);
    assert_eq!(
        probe.paths(),
        expected_nodes(gpus),
        "{what}: node set: {out}"
    );
    for (path, seen) in &probe.nodes {
        assert_eq!(
            seen,
            &fakehw_node(path),
            "{what}: {path}: major:minor/mode/gid differ from the host's node: {out}"
        );
        assert_eq!(
            probe.open(path),
            ENXIO,
            "{what}: {path} must be allowed by the device cgroup: {out}"
        );
    }
    probe
}

fn probe_targets(gpus: &[(u32, u32)]) -> Vec<String> {
    let mut v = vec!["/dev/kfd".to_string()];
    v.extend(gpu_paths(gpus));
    v
}

fn run_selector(s: &Session, label: &str, value: &str, gpus: &[(u32, u32)]) {
    let mut b = s.gpu_bundle(label, value);
    let targets = probe_targets(gpus);
    b.probe(&targets.iter().map(String::as_str).collect::<Vec<_>>());
    let out = s.run(&b);
    assert_exactly(&out, gpus);
    assert!(
        out.hook_log.contains(&b.id),
        "the hook log names the container: {out}"
    );
}

// ---------------------------------------------------------------------------
// 1. AMD_VISIBLE_DEVICES=0 on 8 GPUs

on_v1_and_v2!(
    /// GPU 0's card and render nodes and /dev/kfd appear with the host's
    /// mode and gid and are allowed; GPU 1's render node is absent, and the
    /// same node bind-mounted in by the test is denied; /dev/null works.
    gpu0_gets_kfd_card_render_allowed_gpu1_absent_and_denied => gpu0_scenario
);

fn gpu0_scenario(cg: Cgroup) {
    let s = Session::new("gpu0", "mi300x-8", cg);
    let mut b = s.gpu_bundle("gpu0", "0");
    // GPU 1 is card5/renderD132 on this fixture.
    b.bind("/dev/dri/renderD132", "/dev/gpu1-render");
    b.probe(&[
        "/dev/kfd",
        "/dev/dri/card1",
        "/dev/dri/renderD128",
        "/dev/dri/renderD132",
        "/dev/dri/card5",
        "/dev/gpu1-render",
        "/dev/null",
    ]);
    let out = s.run(&b);
    let probe = assert_exactly(&out, &[MI300X_8[0]]);
    assert_eq!(probe.open("/dev/dri/renderD132"), ENOENT, "{out}");
    assert_eq!(probe.open("/dev/dri/card5"), ENOENT, "{out}");
    assert_eq!(
        probe.open("/dev/gpu1-render"),
        EPERM,
        "GPU 1's node, bind-mounted, must be denied by the device cgroup: {out}"
    );
    assert_eq!(probe.open("/dev/null"), "ok", "{out}");
    assert!(out.hook_log.contains(&b.id), "{out}");
}

// ---------------------------------------------------------------------------
// 2. Selectors

on_v1_and_v2!(
    /// `all` on mi300x-8: all 8 GPUs' nodes, nothing else.
    all_gives_every_gpu_node => all_scenario
);
fn all_scenario(cg: Cgroup) {
    let s = Session::new("all", "mi300x-8", cg);
    run_selector(&s, "all", "all", &MI300X_8);
}

on_v1_and_v2!(
    /// `2-4`: GPUs 2, 3 and 4 (card3/renderD130, card6/renderD133,
    /// card2/renderD129), not the ones with neighbouring minors.
    range_2_4_gives_exactly_gpus_2_3_4 => range_scenario
);
fn range_scenario(cg: Cgroup) {
    let s = Session::new("range", "mi300x-8", cg);
    run_selector(&s, "range", "2-4", &MI300X_8[2..=4]);
}

on_v1_and_v2!(
    /// A KFD unique id (GPU 3's) selects that GPU only.
    unique_id_gives_exactly_that_gpu => unique_id_scenario
);
fn unique_id_scenario(cg: Cgroup) {
    let s = Session::new("uid", "mi300x-8", cg);
    run_selector(&s, "uid", MI300X_8_GPU3_UNIQUE_ID, &[MI300X_8[3]]);
}

on_v1_and_v2!(
    /// Upstream's Swarm variable, `DOCKER_RESOURCE_AMD_GPU=<unique id>`
    /// (docker-swarm.md), with the default config (any `DOCKER_RESOURCE_*`):
    /// exactly that GPU.
    upstream_swarm_variable_gives_exactly_that_gpu => swarm_scenario
);
fn swarm_scenario(cg: Cgroup) {
    let s = Session::new("swarm", "mi300x-8", cg);
    let mut b = s.bundle("swarm");
    b.env("DOCKER_RESOURCE_AMD_GPU", MI300X_8_GPU3_UNIQUE_ID)
        .hook("prestart");
    let gpus = [MI300X_8[3]];
    let targets = probe_targets(&gpus);
    b.probe(&targets.iter().map(String::as_str).collect::<Vec<_>>());
    let out = s.run(&b);
    assert_exactly_in(&out, &gpus, "DOCKER_RESOURCE_AMD_GPU");
    assert!(out.hook_log.contains("DOCKER_RESOURCE_AMD_GPU="), "{out}");
}

on_v1_and_v2!(
    /// On mi300x-cpx, PCI address 0000:05:00.0 selects all 8 compute
    /// partitions of that GPU (card1-8/renderD128-135) but not the other GPU
    /// (card9/renderD136).
    pci_address_on_cpx_gives_all_eight_partitions => pci_scenario
);
fn pci_scenario(cg: Cgroup) {
    let s = Session::new("pci", "mi300x-cpx", cg);
    let partitions: Vec<(u32, u32)> = (0..8).map(|k| (1 + k, 128 + k)).collect();
    run_selector(&s, "pci", "0000:05:00.0", &partitions);
}

// ---------------------------------------------------------------------------
// 3. No request

on_v1_and_v2!(
    /// Without AMD_VISIBLE_DEVICES (and with `void`, `none`) the hook exits 0
    /// and adds no node; the device rules runc made (v1 devices.list, v2 the attached
    /// BPF program's tag) are those of an identical container without the
    /// hook, while a GPU request does change them (so the comparison can see
    /// a change).
    no_request_adds_nothing_and_leaves_device_rules_as_runc_made_them => no_request_scenario
);

fn no_request_scenario(cg: Cgroup) {
    if cg == Cgroup::V2 && !require(have("bpftool"), "bpftool (apt-get install bpftool)") {
        return;
    }
    let s = Session::new("norequest", "mi300x-8", cg);

    // Foreground: nothing added, success; unset and `void` (not a GPU
    // container) take the fast path: the log file is not even opened. `none`
    // (a GPU container with no GPU) gives no node either.
    for (label, value) in [
        ("unset", None),
        ("void", Some("void")),
        ("none", Some("none")),
    ] {
        let mut b = s.bundle(label);
        b.hook("prestart");
        if let Some(v) = value {
            b.env("AMD_VISIBLE_DEVICES", v);
        }
        b.probe(&["/dev/kfd", "/dev/dri/renderD128", "/dev/null"]);
        let out = s.run(&b);
        assert!(out.success(), "{out}");
        let probe = Probe::parse(&out.stdout);
        assert!(probe.nodes.is_empty(), "no node may be added: {out}");
        assert_eq!(probe.open("/dev/kfd"), ENOENT, "{out}");
        assert_eq!(probe.open("/dev/null"), "ok", "{out}");
        assert_eq!(out.stderr, "", "{out}");
        if label != "none" {
            assert_eq!(out.hook_log, "", "the fast path logs nothing: {out}");
        }
    }

    // Detached: the device rules of three live containers.
    let sleeper = |label: &str| {
        let mut b = s.bundle(label);
        b.args(&["sleep", "60"]);
        b
    };
    let plain = sleeper("plain");
    let mut hooked = sleeper("hooked");
    // Runs first (hooks run in order): what runc made, as the hook finds it.
    let runc_made = hooked.dir.join("rules-before-hook");
    record_rules_hook(&mut hooked, &runc_made, cg);
    hooked.hook("prestart");
    let mut gpu = sleeper("gpu");
    gpu.hook("prestart").env("AMD_VISIBLE_DEVICES", "0");
    let (rules, out) = device_rules(&s, &[&plain, &hooked, &gpu]);
    let (plain_rules, hooked_rules, gpu_rules) = (&rules[0], &rules[1], &rules[2]);
    match cg {
        Cgroup::V1 => assert!(
            plain_rules.contains("c 1:3 rwm"),
            "devices.list not read: {out}"
        ),
        Cgroup::V2 => assert_eq!(
            plain_rules.matches("tag ").count(),
            1,
            "runc attaches one device program: {out}"
        ),
    }
    let before = std::fs::read_to_string(&runc_made).unwrap_or_default();
    eprintln!("device rules on {cg}: runc made {before:?}; after the hook {hooked_rules:?}");
    assert_eq!(
        &before, hooked_rules,
        "the hook changed the device rules (v2: program id or tag) runc made: {out}"
    );
    assert_eq!(
        without_ids(hooked_rules),
        without_ids(plain_rules),
        "the rules of a hooked container without a request differ from a hook-less one: {out}"
    );
    assert_ne!(
        without_ids(gpu_rules),
        without_ids(plain_rules),
        "control: a GPU request must change the rules: {out}"
    );
    assert!(s.leftover_containers().is_empty(), "{out}");
}

/// A shell function `rules PID`: the device rules of process PID's cgroup on
/// cgroup `$CG`: v1 the sorted `devices.list` of its devices cgroup, on one
/// line; v2 `id N tag T` for each BPF_CGROUP_DEVICE program attached to its
/// cgroup (`bpftool`; the tag is a hash of the program's instructions).
const RULES_FN: &str = r#"
rules() {
    if [ "$CG" = v1 ]; then
        rel=$(awk -F: '$2 ~ /(^|,)devices(,|$)/ {print $3}' /proc/$1/cgroup)
        sort "/sys/fs/cgroup/devices$rel/devices.list" | tr '
' ' '
    else
        rel=$(awk -F: '$1 == 0 {print $3}' /proc/$1/cgroup)
        for prog in $(bpftool cgroup show "/sys/fs/cgroup$rel" | awk '$2 == "cgroup_device" {print $1}'); do
            echo "id $prog $(bpftool prog show id "$prog" | grep -o 'tag [0-9a-f]*')" | tr '
' ' '
        done
    fi
}
"#;

/// Drops the `id N` items of [`RULES_FN`] output (ids differ between
/// containers, tags do not for the same program).
fn without_ids(rules: &str) -> String {
    let mut out = Vec::new();
    let mut words = rules.split_whitespace();
    while let Some(w) = words.next() {
        if w == "id" {
            words.next();
        } else {
            out.push(w);
        }
    }
    out.join(" ")
}

/// Registers, as the bundle's first prestart hook, a shell script that writes
/// [`RULES_FN`]'s view of the container's device rules to `file`.
fn record_rules_hook(b: &mut Bundle, file: &std::path::Path, cg: Cgroup) {
    let script = format!(
        r#"{RULES_FN}
pid=$(cat | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$')
rules "$pid" > '{}'"#,
        file.display()
    );
    let hook = serde_json::json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", script],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", format!("CG={cg}")],
    });
    let hooks = &mut b.config["hooks"];
    if hooks.is_null() {
        *hooks = serde_json::json!({});
    }
    let prestart = hooks
        .as_object_mut()
        .unwrap()
        .entry("prestart")
        .or_insert_with(|| serde_json::json!([]));
    prestart.as_array_mut().unwrap().insert(0, hook);
}

/// Starts the bundles detached (`runc run -d`; their process must keep
/// running, e.g. `sleep 60`), reads each container's device rules
/// ([`RULES_FN`]) and deletes them.
fn device_rules(s: &Session, bundles: &[&Bundle]) -> (Vec<String>, RunOutput) {
    for b in bundles {
        b.save();
    }
    let dirs: Vec<String> = bundles
        .iter()
        .map(|b| format!("'{}'", b.dir.display()))
        .collect();
    let script = format!(
        r#"{RULES_FN}
CG=$FAKEHW_CGROUP
for b in {dirs}; do
    id=$(basename "$b")
    runc --root "$RUNC_ROOT" run -d --bundle "$b" "$id" </dev/null >/dev/null 2>"$b/runc.err" \
        || {{ echo "run $id failed: $(cat "$b/runc.err")"; continue; }}
    pid=$(runc --root "$RUNC_ROOT" state "$id" | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$')
    echo "rules $id: $(rules "$pid")"
done
for b in {dirs}; do runc --root "$RUNC_ROOT" delete -f "$(basename "$b")" || true; done
"#,
        dirs = dirs.join(" ")
    );
    let out = s.sh_with(&script, bundles.last().copied());
    assert!(out.success(), "{out}");
    let found: BTreeMap<&str, &str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("rules "))
        .filter_map(|l| l.split_once(": "))
        .collect();
    let rules = bundles
        .iter()
        .map(|b| {
            found
                .get(b.id.as_str())
                .unwrap_or_else(|| panic!("no rules read for {}: {out}", b.id))
                .to_string()
        })
        .collect();
    (rules, out)
}

// ---------------------------------------------------------------------------
// 4. Invalid requests

on_v1_and_v2!(
    /// `AMD_VISIBLE_DEVICES=9` on 8 GPUs, `=abc`, `=xyz`: `runc run` fails, its
    /// error names the variable, the value and the problem, the container
    /// never runs and no container is left; with the image's own /dev (no
    /// tmpfs), nothing is left in the rootfs either.
    invalid_request_fails_run_names_value_and_creates_nothing => invalid_scenario
);

fn invalid_scenario(cg: Cgroup) {
    let s = Session::new("invalid", "mi300x-8", cg);
    // `abc` is valid syntax (bare hex unique id) that matches no GPU; `xyz`
    // is no valid item at all.
    for (value, problem) in [
        ("9", "index 9 is out of range"),
        ("abc", "no GPU has unique id 0xabc"),
        ("xyz", "is not a GPU index"),
    ] {
        let b = s.gpu_bundle("invalid", value);
        let out = s.run(&b);
        assert!(!out.success(), "runc run must fail: {out}");
        assert!(
            out.stderr.contains(&format!("AMD_VISIBLE_DEVICES={value}"))
                && out.stderr.contains(problem),
            "runc's error must name AMD_VISIBLE_DEVICES={value} and say {problem:?}: {out}"
        );
        assert!(
            !out.stdout.contains("probe done"),
            "the container ran: {out}"
        );
        assert!(
            s.leftover_containers().is_empty(),
            "runc left a container: {out}"
        );
        // The admin's record: the log file has the rejection too, with the id.
        assert!(
            out.hook_log.contains("ERROR")
                && out
                    .hook_log
                    .contains(&format!("AMD_VISIBLE_DEVICES={value}"))
                && out.hook_log.contains(&b.id),
            "the hook log must record the rejected request: {out}"
        );
    }

    // The image's own /dev: anything created would stay in the rootfs.
    let mut b = s.gpu_bundle("invalid-rootfs", "9");
    let rootfs = b.private_rootfs();
    b.without_dev_tmpfs();
    let out = s.run(&b);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("AMD_VISIBLE_DEVICES=9"), "{out}");
    for left in ["dev/kfd", "dev/dri"] {
        assert!(
            std::fs::symlink_metadata(rootfs.join(left)).is_err(),
            "{left} was created in the rootfs by a failed request: {out}"
        );
    }
    assert!(s.leftover_containers().is_empty(), "{out}");
}

// ---------------------------------------------------------------------------
// 5. Hostile image

on_v1_and_v2!(
    /// An image whose `dev/dri` is a symlink to an absolute host directory,
    /// run without the /dev tmpfs: the hook (which did run: its log names the
    /// container) refuses, runc fails naming the symlink, and what the hook
    /// made is rolled back (no dev/kfd left) — or it creates inside the root
    /// only; either way the host directory stays empty. The same for `dev`
    /// itself a symlink to a host directory (nothing of the hook's there;
    /// runc 1.1.5 puts its own /dev symlinks there), and for `dev/kfd` a
    /// symlink to a host file, which keeps its content, mode and owner.
    hostile_image_symlinks_never_lead_the_hook_to_the_host => hostile_scenario
);

fn hostile_scenario(cg: Cgroup) {
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    let s = Session::new("hostile", "mi300x-8", cg);
    for case in ["dev-dri-dir", "dev-dir", "dev-kfd-file"] {
        let host_dir = s.dir.join(format!("host-{case}"));
        std::fs::create_dir_all(&host_dir).unwrap();
        let host_file = host_dir.join("precious");
        std::fs::write(&host_file, "host data\n").unwrap();
        std::fs::set_permissions(&host_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut b = s.gpu_bundle(case, "0");
        let rootfs = b.private_rootfs();
        b.without_dev_tmpfs();
        match case {
            "dev-dri-dir" => symlink(&host_dir, rootfs.join("dev/dri")).unwrap(),
            "dev-dir" => {
                std::fs::remove_dir(rootfs.join("dev")).unwrap();
                symlink(&host_dir, rootfs.join("dev")).unwrap();
            }
            _ => symlink(&host_file, rootfs.join("dev/kfd")).unwrap(),
        }
        let out = s.run(&b);
        let what = format!("{case}: {out}");
        assert!(out.hook_log.contains(&b.id), "the hook did not run: {what}");
        let host_entries: Vec<_> = std::fs::read_dir(&host_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            // runc 1.1.5 itself follows a `dev` symlink out of the root when it
            // makes its /dev symlinks (not the hook's doing): ignore those.
            .filter(|n| {
                !(case == "dev-dir"
                    && ["fd", "stdin", "stdout", "stderr", "ptmx"].contains(&n.as_str()))
            })
            .collect();
        assert_eq!(
            host_entries,
            ["precious"],
            "something was made in the host directory: {what}"
        );
        let meta = std::fs::metadata(&host_file).unwrap();
        assert!(meta.is_file(), "{what}");
        assert_eq!(
            meta.mode() & 0o7777,
            0o600,
            "host file mode changed: {what}"
        );
        assert_eq!(
            (meta.uid(), meta.gid()),
            (0, 0),
            "host file owner changed: {what}"
        );
        assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "host data\n");
        if out.success() {
            // Allowed alternative: the nodes were made inside the root.
            let probe = Probe::parse(&out.stdout);
            assert!(probe.nodes.contains_key("/dev/kfd"), "{what}");
        } else {
            assert!(
                out.stderr.contains("symlink"),
                "the refusal must name the symlink: {what}"
            );
            if case == "dev-dri-dir" {
                assert!(
                    std::fs::symlink_metadata(rootfs.join("dev/kfd")).is_err(),
                    "a refused injection must not leave /dev/kfd behind: {what}"
                );
            }
        }
        assert!(s.leftover_containers().is_empty(), "{what}");
    }
}

on_v1_and_v2!(
    /// All or nothing: the image (own /dev, no tmpfs) has a regular file at
    /// GPU 0's render node path, so the hook fails midway (it makes the nodes
    /// in order: /dev/kfd, card1, renderD128); runc fails naming the path, no
    /// /dev/kfd or card1 is left, and the image's own file stays.
    failure_midway_removes_what_the_hook_made => rollback_scenario
);

fn rollback_scenario(cg: Cgroup) {
    let s = Session::new("rollback", "mi300x-8", cg);
    let mut b = s.gpu_bundle("rollback", "0");
    let rootfs = b.private_rootfs();
    b.without_dev_tmpfs();
    std::fs::create_dir(rootfs.join("dev/dri")).unwrap();
    std::fs::write(rootfs.join("dev/dri/renderD128"), "image file\n").unwrap();
    let out = s.run(&b);
    assert!(!out.success(), "runc run must fail: {out}");
    assert!(
        out.stderr.contains("/dev/dri/renderD128"),
        "the error names the path: {out}"
    );
    for made in ["dev/kfd", "dev/dri/card1"] {
        assert!(
            std::fs::symlink_metadata(rootfs.join(made)).is_err(),
            "{made} made before the failure was not removed: {out}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(rootfs.join("dev/dri/renderD128")).unwrap(),
        "image file\n",
        "{out}"
    );
    assert!(s.leftover_containers().is_empty(), "{out}");
}

// ---------------------------------------------------------------------------
// 6. Concurrency

const CONCURRENT: usize = 50;

on_v1_and_v2!(
    /// 50 `runc run`s started at once (threads), each asking for its own GPU
    /// (index i mod 8, every fifth one a pair): every container sees exactly
    /// its nodes, allowed; and of the host's whole /dev/dri, bind-mounted in,
    /// it can open exactly its own GPUs' nodes (the others: denied), so no
    /// container's rules leak into another's.
    fifty_concurrent_containers_each_get_exactly_their_gpus => concurrent_scenario
);

fn concurrent_scenario(cg: Cgroup) {
    let s = Arc::new(Session::new("concurrent", "mi300x-8", cg));
    let barrier = Arc::new(Barrier::new(CONCURRENT));
    let host_nodes = gpu_paths(&MI300X_8);
    let start = Instant::now();
    let handles: Vec<_> = (0..CONCURRENT)
        .map(|i| {
            let (s, barrier) = (Arc::clone(&s), Arc::clone(&barrier));
            let host_nodes = host_nodes.clone();
            std::thread::spawn(move || {
                let (value, gpus) = if i % 5 == 4 {
                    let (a, b) = (i % 8, (i + 3) % 8);
                    (format!("{a},{b}"), vec![MI300X_8[a], MI300X_8[b]])
                } else {
                    ((i % 8).to_string(), vec![MI300X_8[i % 8]])
                };
                let mut b = s.gpu_bundle(&format!("c{i}"), &value);
                b.bind("/dev/dri", "/host-dri");
                let mut targets = probe_targets(&gpus);
                targets.extend(
                    host_nodes
                        .iter()
                        .map(|p| p.replace("/dev/dri", "/host-dri")),
                );
                b.probe(&targets.iter().map(String::as_str).collect::<Vec<_>>());
                barrier.wait();
                let out = s.run(&b);
                (value, gpus, out)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let elapsed = start.elapsed();
    let slowest = results.iter().map(|r| r.2.elapsed).max().unwrap();
    eprintln!(
        "{CONCURRENT} concurrent runc runs on cgroup {cg}: {elapsed:.2?} in all, slowest {slowest:.2?}"
    );
    for (value, gpus, out) in &results {
        let what = format!("AMD_VISIBLE_DEVICES={value}");
        let probe = assert_exactly_in(out, gpus, &what);
        let own: BTreeSet<String> = gpu_paths(gpus).into_iter().collect();
        for node in &host_nodes {
            let expected = if own.contains(node) { ENXIO } else { EPERM };
            let seen = node.replace("/dev/dri", "/host-dri");
            assert_eq!(probe.open(&seen), expected, "{what}: host {node}: {out}");
        }
    }
    assert!(s.leftover_containers().is_empty());
}

// ---------------------------------------------------------------------------
// 7. precreate

/// Runs `amd-container-hook precreate` on `input` inside the fake-hardware
/// namespace with only the registered environment; returns (output bytes,
/// the run).
fn precreate(s: &Session, b: &Bundle, input: &[u8]) -> (Vec<u8>, RunOutput) {
    let input_path = b.dir.join("precreate-in.json");
    let output_path = b.dir.join("precreate-out.json");
    std::fs::write(&input_path, input).unwrap();
    b.write_hook_config();
    let script = format!(
        r#"env -i {} "$HOOK" precreate < '{}' > '{}'"#,
        b.hook_env_sh(),
        input_path.display(),
        output_path.display()
    );
    let out = s.sh_with(&script, Some(b));
    assert!(out.success(), "precreate failed: {out}");
    (std::fs::read(&output_path).unwrap(), out)
}

on_v1_and_v2!(
    /// `precreate` on a real spec asking for GPU 1: the config it prints, run
    /// by runc without any hook, gives the container GPU 1's nodes (and
    /// /dev/kfd) with the host's mode and gid, allowed; GPU 0's are absent.
    precreate_output_run_by_runc_gives_gpu1_nodes => precreate_scenario
);

fn precreate_scenario(cg: Cgroup) {
    let s = Session::new("precreate", "mi300x-8", cg);
    let gpus = [MI300X_8[1]];
    let mut b = s.bundle("precreate");
    b.env("AMD_VISIBLE_DEVICES", "1");
    let mut targets = probe_targets(&gpus);
    targets.push("/dev/dri/renderD128".into());
    b.probe(&targets.iter().map(String::as_str).collect::<Vec<_>>());
    b.save();
    let input = std::fs::read(b.config_path()).unwrap();
    let (output, run) = precreate(&s, &b, &input);
    assert_eq!(run.stderr, "", "precreate prints only the config: {run}");
    b.config = serde_json::from_slice(&output)
        .unwrap_or_else(|e| panic!("precreate output is not JSON ({e}): {run}"));
    assert!(
        b.config.get("hooks").is_none(),
        "no live hook in this bundle"
    );
    let out = s.run(&b);
    let probe = assert_exactly(&out, &gpus);
    assert_eq!(probe.open("/dev/dri/renderD128"), ENOENT, "{out}");
}

/// `precreate` hands a spec that asks for no GPU (no variable; `void`) back
/// byte for byte, whitespace and key order included.
#[test]
fn precreate_leaves_non_gpu_spec_byte_identical() {
    if !ready() {
        return;
    }
    let s = Session::new("precreate-id", "mi300x-8", Cgroup::V1);
    let mut b = s.bundle("precreate-id");
    b.save();
    let pretty = std::fs::read(b.config_path()).unwrap();
    let (out, run) = precreate(&s, &b, &pretty);
    assert!(out == pretty, "spec changed: {run}");

    b.env("AMD_VISIBLE_DEVICES", "void");
    // Compact and with an odd key order: must still come back unchanged.
    let mut compact = serde_json::to_vec(&b.config).unwrap();
    compact.splice(1..1, br#""zz":1,"#.iter().copied());
    let (out, run) = precreate(&s, &b, &compact);
    assert!(
        out == compact,
        "spec changed:\n{}\n{run}",
        String::from_utf8_lossy(&out)
    );
}

// ---------------------------------------------------------------------------
// Idempotence

on_v1_and_v2!(
    /// The hook registered twice (prestart and createRuntime) for
    /// AMD_VISIBLE_DEVICES=0: the container starts, sees the same node set as
    /// with one run, and the second run created nothing.
    hook_twice_prestart_and_create_runtime_is_idempotent => twice_scenario
);

fn twice_scenario(cg: Cgroup) {
    let s = Session::new("twice", "mi300x-8", cg);
    let gpus = [MI300X_8[0]];
    let mut b = s.gpu_bundle("twice", "0");
    b.hook("createRuntime");
    let targets = probe_targets(&gpus);
    b.probe(&targets.iter().map(String::as_str).collect::<Vec<_>>());
    let out = s.run(&b);
    assert_exactly(&out, &gpus);
    let runs: Vec<&str> = out
        .hook_log
        .lines()
        .filter(|l| l.contains(&b.id) && l.contains(" gave "))
        .collect();
    assert_eq!(runs.len(), 2, "two hook runs logged: {out}");
    assert!(
        runs[1].contains("(0 created"),
        "the second run must create nothing: {out}"
    );

    // The device rules after two runs are those after one: nothing stacked
    // (v2: one program, the same instructions; v1: the same devices.list).
    if cg == Cgroup::V2 && !require(have("bpftool"), "bpftool (apt-get install bpftool)") {
        return;
    }
    let mut once = s.bundle("once");
    once.hook("prestart")
        .env("AMD_VISIBLE_DEVICES", "0")
        .args(&["sleep", "60"]);
    let mut twice = s.bundle("twice-live");
    twice
        .hook("prestart")
        .hook("createRuntime")
        .env("AMD_VISIBLE_DEVICES", "0")
        .args(&["sleep", "60"]);
    let (rules, out) = device_rules(&s, &[&once, &twice]);
    if cg == Cgroup::V2 {
        assert_eq!(rules[0].matches("tag ").count(), 1, "{out}");
    }
    assert_eq!(
        without_ids(&rules[1]),
        without_ids(&rules[0]),
        "a second run must leave the device rules as the first made them: {out}"
    );
}

// ---------------------------------------------------------------------------
// User namespace

on_v1_and_v2!(
    /// A container with a user namespace (mknod is refused there): the hook
    /// bind-mounts the host nodes instead; the container sees exactly GPU 0's
    /// nodes with the host's major:minor, mode and gid, allowed.
    user_namespace_container_gets_gpu0_nodes_bind_mounted => userns_scenario
);

fn userns_scenario(cg: Cgroup) {
    let s = Session::new("userns", "mi300x-8", cg);
    let gpus = [MI300X_8[0]];
    let mut b = s.gpu_bundle("userns", "0");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    let mapping = serde_json::json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
    b.config["linux"]["uidMappings"] = mapping.clone();
    b.config["linux"]["gidMappings"] = mapping;
    // A fresh sysfs cannot be mounted in a user namespace whose mount
    // namespace shows no full sysfs (the fake /sys is not one); the probe
    // needs no /sys.
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| !m["destination"].as_str().unwrap().starts_with("/sys"));
    let targets = probe_targets(&gpus);
    b.probe(&targets.iter().map(String::as_str).collect::<Vec<_>>());
    let out = s.run(&b);
    assert_exactly(&out, &gpus);
    assert!(
        out.hook_log.contains("bind-mounted"),
        "the hook must have taken the bind-mount path: {out}"
    );
}

// ---------------------------------------------------------------------------
// The fast path's binary

/// `amd-container-hook` runs at every container start: libudev must not be
/// among the libraries the dynamic loader maps for it (hook/src/lazy_udev/ffi.rs
/// loads it for GPU containers only). Every test above that gives a GPU
/// proves the lazily loaded library works.
#[test]
fn fast_path_binary_links_no_libudev() {
    let hook = bin("amd-container-hook");
    let out = std::process::Command::new("ldd")
        .arg(&hook)
        .output()
        .expect("ldd (libc-bin) runs");
    let libs = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ldd {}: {libs}", hook.display());
    assert!(libs.contains("libc.so"), "ldd lists no libc: {libs}");
    assert!(
        !libs.contains("libudev"),
        "{} links libudev at start-up:\n{libs}",
        hook.display()
    );
}

// ---------------------------------------------------------------------------
// Non-root container users (hosts whose kfd and render nodes are 0660 root:render)

/// GPU 0's nodes on mi300x-8.
const GPU0_NODES: [&str; 3] = ["/dev/kfd", "/dev/dri/card1", "/dev/dri/renderD128"];

/// Runs a uid 1000:1000 busybox with the live hook and AMD_VISIBLE_DEVICES=0
/// on the strict fake hardware (kfd and render 0660 root:109); `devices` is
/// the hook config's `[devices]` table ("" for the defaults),
/// `additional_gids` the process's. Returns the probe and the run.
fn nonroot_run(
    s: &Session,
    label: &str,
    devices: &str,
    additional_gids: &[u32],
) -> (Probe, RunOutput) {
    let mut b = s.gpu_bundle(label, "0");
    b.user(1000, 1000);
    if !additional_gids.is_empty() {
        b.config["process"]["user"]["additionalGids"] = serde_json::json!(additional_gids);
    }
    b.hook_config_extra = devices.to_string();
    b.write_hook_config();
    b.probe(&GPU0_NODES);
    let out = s.run(&b);
    assert!(out.success(), "{label}: runc run failed: {out}");
    let probe = Probe::parse(&out.stdout);
    assert_eq!(probe.paths(), expected_nodes(&[MI300X_8[0]]), "{out}");
    (probe, out)
}

/// (mode, gid) of a node as the container sees it.
fn mode_gid(probe: &Probe, path: &str) -> (u32, u32) {
    let n = &probe.nodes[path];
    (n.mode, n.gid)
}

on_v1_and_v2!(
    /// kfd and render 0660 root:render on the host, the container's process
    /// uid 1000 gid 1000: by default the hook creates kfd and renderD128 in
    /// the container with group 1000 (mode kept), so opening them reaches
    /// the (absent) driver; card1 keeps the host's 0660 gid 44 and is
    /// refused. `user-access = []` leaves all three refused (the test can
    /// fail); `["kfd", "render", "card"]` opens card1 too; a process already
    /// in group 109 (what amd-container-runtime and precreate add) gets the
    /// host's group, unchanged.
    nonroot_user_opens_kfd_and_render_card_keeps_host_policy => nonroot_scenario
);

fn nonroot_scenario(cg: Cgroup) {
    let s = Session::new("nonroot", "mi300x-8", cg).strict_nodes();

    let (probe, out) = nonroot_run(&s, "default", "", &[]);
    assert_eq!(mode_gid(&probe, "/dev/kfd"), (0o660, 1000), "{out}");
    assert_eq!(
        mode_gid(&probe, "/dev/dri/renderD128"),
        (0o660, 1000),
        "{out}"
    );
    assert_eq!(mode_gid(&probe, "/dev/dri/card1"), (0o660, 44), "{out}");
    assert_eq!(probe.open("/dev/kfd"), ENXIO, "{out}");
    assert_eq!(probe.open("/dev/dri/renderD128"), ENXIO, "{out}");
    assert_eq!(probe.open("/dev/dri/card1"), EACCES, "{out}");
    assert!(
        out.hook_log
            .contains("group 1000 for the container's user: /dev/kfd /dev/dri/renderD128"),
        "{out}"
    );

    let (probe, out) = nonroot_run(&s, "off", "[devices]\nuser-access = []\n", &[]);
    for path in GPU0_NODES {
        assert_eq!(probe.open(path), EACCES, "{path}: {out}");
    }
    assert_eq!(mode_gid(&probe, "/dev/kfd"), (0o660, 109), "{out}");

    let all = "[devices]\nuser-access = [\"kfd\", \"render\", \"card\"]\n";
    let (probe, out) = nonroot_run(&s, "card", all, &[]);
    for path in GPU0_NODES {
        assert_eq!(probe.open(path), ENXIO, "{path}: {out}");
    }
    assert_eq!(mode_gid(&probe, "/dev/dri/card1"), (0o660, 1000), "{out}");

    let (probe, out) = nonroot_run(&s, "in-group", "", &[109]);
    assert_eq!(mode_gid(&probe, "/dev/kfd"), (0o660, 109), "{out}");
    assert_eq!(probe.open("/dev/kfd"), ENXIO, "{out}");
    assert_eq!(probe.open("/dev/dri/renderD128"), ENXIO, "{out}");
    assert!(!out.hook_log.contains("for the container's user"), "{out}");
}

on_v1_and_v2!(
    /// precreate on the strict fake hardware for a uid 1000:1000 process:
    /// the config it prints has the nodes with the host's gid 109 and
    /// `process.user.additionalGids` [109]; run by runc without any hook,
    /// kfd and renderD128 open (driver absent), card1 is refused.
    precreate_gives_nonroot_user_the_render_group => precreate_nonroot_scenario
);

fn precreate_nonroot_scenario(cg: Cgroup) {
    let s = Session::new("precreate-nonroot", "mi300x-8", cg).strict_nodes();
    let mut b = s.bundle("precreate-nonroot");
    b.env("AMD_VISIBLE_DEVICES", "0").user(1000, 1000);
    b.probe(&GPU0_NODES);
    b.save();
    let input = std::fs::read(b.config_path()).unwrap();
    let (output, run) = precreate(&s, &b, &input);
    b.config = serde_json::from_slice(&output)
        .unwrap_or_else(|e| panic!("precreate output is not JSON ({e}): {run}"));
    assert_eq!(
        b.config["process"]["user"],
        serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [109]}),
        "{run}"
    );
    let out = s.run(&b);
    assert!(out.success(), "{out}");
    let probe = Probe::parse(&out.stdout);
    assert_eq!(mode_gid(&probe, "/dev/kfd"), (0o660, 109), "{out}");
    assert_eq!(probe.open("/dev/kfd"), ENXIO, "{out}");
    assert_eq!(probe.open("/dev/dri/renderD128"), ENXIO, "{out}");
    assert_eq!(probe.open("/dev/dri/card1"), EACCES, "{out}");
}
