//! A real dockerd (a private one, started by the test inside the
//! fake-hardware mount namespace: see harness/engines.rs) configured by
//! `amd-ctk runtime configure --runtime docker --config …`:
//! `docker run --runtime=amd -e AMD_VISIBLE_DEVICES=0` gets exactly GPU 0's
//! nodes and /dev/kfd, allowed by the device cgroup; after `--set-as-default`
//! and a reload the same without `--runtime`; after `--remove` the runtime is
//! gone and daemon.json is as before.
//!
//! The device oracle inside a container (README.md, "Testing without a GPU"): a node
//! that is absent gives `No such file or directory`, one the device cgroup
//! allows `No such device or address` (no driver on this host).

use amd_ctk_e2e::engines::*;
use amd_ctk_e2e::probe::*;
use amd_ctk_e2e::runc::Cgroup;
use amd_ctk_e2e::*;
use std::process::Command;
use std::time::Instant;

fn ready() -> bool {
    require(is_root(), "root (mount namespaces, dockerd)")
        && require(
            have("dockerd") && have("docker") && have("runc"),
            "dockerd, docker and runc (apt-get install docker.io runc)",
        )
        && require(
            have("umockdev-run") && have("busybox") && have("python3") && have("setpriv"),
            "umockdev-run, busybox, python3 and setpriv \
             (apt-get install umockdev busybox-static python3 util-linux)",
        )
}

/// The daemon.json the test starts from: keys of the user's that `amd-ctk`
/// must keep (order and values), another runtime, a `features` object. The
/// storage driver is here, not on dockerd's command line (dockerd refuses a
/// setting given both ways). Written the way amd-ctk writes (4-space indent),
/// so "as before" can be checked byte for byte.
const DAEMON_JSON: &str = r#"{
    "log-level": "info",
    "storage-driver": "vfs",
    "features": {
        "buildkit": false
    },
    "runtimes": {
        "other": {
            "path": "runc"
        }
    },
    "max-concurrent-downloads": 2
}
"#;

/// amd-ctk, keeping its record of Docker's features.cdi in `record` (the
/// test's, never the host's).
fn amd_ctk(args: &[&str], record: &std::path::Path) -> String {
    let out = Command::new(bin("amd-ctk"))
        .args(args)
        .env("AMD_CTK_DOCKER_CDI_STATE", record)
        .output()
        .expect("amd-ctk runs");
    assert!(
        out.status.success(),
        "amd-ctk {args:?} failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `amd-ctk runtime configure --runtime docker --config DAEMON_JSON
/// --runtime-path <built amd-container-runtime> EXTRA…`.
fn configure(d: &Dockerd, extra: &[&str]) -> String {
    let config = d.daemon_json.display().to_string();
    let runtime = runtime_bin().display().to_string();
    let mut args = vec![
        "runtime",
        "configure",
        "--runtime",
        "docker",
        "--config",
        &config,
        "--runtime-path",
        &runtime,
    ];
    args.extend_from_slice(extra);
    amd_ctk(&args, &d.work.join("docker-cdi.json"))
}

/// A daemon on mi300x-8, configured with the `amd` runtime, started, with
/// busybox imported. The toolkit config makes amd-container-runtime register
/// the hook under test, with an environment for the fake hardware.
fn configured_daemon(name: &str, cg: Cgroup) -> Dockerd {
    configured_daemon_with(name, cg, false)
}

/// [`configured_daemon`], on fake hardware with kfd and render nodes 0660
/// root:109 when `strict_nodes`.
fn configured_daemon_with(name: &str, cg: Cgroup, strict_nodes: bool) -> Dockerd {
    let mut d = Dockerd::new(name, "mi300x-8", cg, DAEMON_JSON);
    d.strict_nodes = strict_nodes;
    // runtime.hook-env: SYSTEMD_DEVICE_VERIFY_SYSFS=0 is test-only (libudev
    // and the fake /sys, see tests/fakehw/README.md; the product never sets
    // it); AMD_CTK_CONFIG makes the hook read this same file (log file).
    let runtime = format!(
        "hook-path = {:?}\nhook-env = [\"SYSTEMD_DEVICE_VERIFY_SYSFS=0\", \"AMD_CTK_CONFIG={}\"]\n",
        hook_bin().display().to_string(),
        d.toolkit_config.display()
    );
    std::fs::write(&d.toolkit_config, toolkit_config(&d.hook_log, &runtime)).unwrap();
    let report = configure(&d, &[]);
    assert!(report.contains("runtimes.amd"), "{report}");
    let daemon: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&d.daemon_json).unwrap()).unwrap();
    assert_eq!(
        daemon["runtimes"]["amd"],
        serde_json::json!({"path": runtime_bin()}),
        "{daemon}"
    );
    d.start();
    d.import_busybox();
    d
}

fn hook_log(d: &Dockerd) -> String {
    std::fs::read_to_string(&d.hook_log).unwrap_or_default()
}

on_v1_and_v2!(
    /// `--runtime=amd -e AMD_VISIBLE_DEVICES=0`: exactly GPU 0's card1,
    /// renderD128 and /dev/kfd, allowed (ENXIO), GPU 1's absent; the hook
    /// log names the container. `--runtime=amd` without the variable, and the
    /// variable without `--runtime=amd` (default runc): no GPU node.
    runtime_amd_gives_gpu0_only_when_requested => runtime_flag_scenario
);

fn runtime_flag_scenario(cg: Cgroup) {
    let start = Instant::now();
    let d = configured_daemon("flag", cg);
    let (names, default) = d.runtimes();
    assert!(names.iter().any(|n| n == "amd"), "{names:?}");
    assert_eq!(default, "runc");

    let out = d.probe_ok(&["--runtime=amd", "-e", "AMD_VISIBLE_DEVICES=0"]);
    assert_gpu0_only(&out, "--runtime=amd AMD_VISIBLE_DEVICES=0");
    let log = hook_log(&d);
    assert!(
        log.contains("AMD_VISIBLE_DEVICES=0: gave /dev/kfd /dev/dri/card1 /dev/dri/renderD128"),
        "hook log:\n{log}"
    );

    let out = d.probe_ok(&["--runtime=amd"]);
    assert_no_gpu(&out, "--runtime=amd without AMD_VISIBLE_DEVICES");

    let out = d.probe_ok(&["-e", "AMD_VISIBLE_DEVICES=0"]);
    assert_no_gpu(
        &out,
        "AMD_VISIBLE_DEVICES=0 with the default runtime (runc)",
    );
    eprintln!("{cg}: {:.1?}", start.elapsed());
}

/// `--set-as-default` + SIGHUP: `docker info` shows `amd` as the default
/// runtime and `docker run -e AMD_VISIBLE_DEVICES=0` (no `--runtime`) gets
/// GPU 0 only; without the variable nothing. `--remove` + restart: the
/// runtime is gone (`docker info`, and `docker run --runtime=amd` fails),
/// runc is the default again (the variable gives nothing), and daemon.json is
/// byte for byte the file the test started from. dockerd's host-side files
/// (/etc/docker/key.json, /run/docker, …) did not appear on the host.
#[test]
fn set_as_default_then_remove_restores_daemon_json() {
    if !ready() {
        return;
    }
    let start = Instant::now();
    let mut d = configured_daemon("default", Cgroup::V1);

    let report = configure(&d, &["--set-as-default"]);
    assert!(report.contains("default-runtime"), "{report}");
    d.reload();
    d.wait_for_runtimes("after --set-as-default and SIGHUP", |_, default| {
        default == "amd"
    });
    let out = d.probe_ok(&["-e", "AMD_VISIBLE_DEVICES=0"]);
    assert_gpu0_only(&out, "default runtime amd, AMD_VISIBLE_DEVICES=0");
    let out = d.probe_ok(&[]);
    assert_no_gpu(&out, "default runtime amd, no AMD_VISIBLE_DEVICES");

    let report = configure(&d, &["--remove"]);
    assert!(report.contains("restart"), "{report}");
    assert_eq!(
        std::fs::read_to_string(&d.daemon_json).unwrap(),
        DAEMON_JSON,
        "--remove must give back the original daemon.json"
    );
    // Removed keys need a restart (SIGHUP applies only keys that are present).
    d.restart();
    let (names, default) = d.runtimes();
    assert!(!names.iter().any(|n| n == "amd"), "{names:?}");
    assert!(names.iter().any(|n| n == "other"), "{names:?}");
    assert_eq!(default, "runc");
    let out = d.run_probe(&["--runtime=amd", "-e", "AMD_VISIBLE_DEVICES=0"]);
    assert!(
        !out.status.success()
            && text(&out.stderr).to_lowercase().contains("runtime")
            && text(&out.stderr).contains("amd"),
        "docker run --runtime=amd must fail once the runtime is removed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = d.probe_ok(&["-e", "AMD_VISIBLE_DEVICES=0"]);
    assert_no_gpu(&out, "after --remove, AMD_VISIBLE_DEVICES=0");

    d.stop();
    assert_eq!(
        d.new_host_paths(),
        Vec::<String>::new(),
        "dockerd wrote on the host"
    );
    eprintln!("{:.1?}", start.elapsed());
}

on_v1_and_v2!(
    /// kfd and render 0660 root:render (gid 109) on the host: `--runtime=amd
    /// --user 1000:1000 -e AMD_VISIBLE_DEVICES=0` opens kfd and renderD128
    /// (ENXIO: allowed, no driver) because amd-container-runtime added group
    /// 109 to the process (as `--group-add 109` would): the nodes keep the
    /// host's group and the hook has nothing to change for the user; card1
    /// keeps the host's policy (refused). With `[devices] user-access = []`
    /// all three are refused.
    runtime_amd_gives_nonroot_user_the_render_group => nonroot_scenario
);

fn nonroot_scenario(cg: Cgroup) {
    let d = configured_daemon_with("nonroot", cg, true);
    let args = [
        "--runtime=amd",
        "--user",
        "1000:1000",
        "-e",
        "AMD_VISIBLE_DEVICES=0",
    ];
    let out = d.probe_ok(&args);
    let probe = Probe::parse(&out);
    for (path, gid) in [
        ("/dev/kfd", 109),
        ("/dev/dri/renderD128", 109),
        ("/dev/dri/card1", 44),
    ] {
        let seen = &probe.nodes[path];
        assert_eq!((seen.mode, seen.gid), (0o660, gid), "{path}:\n{out}");
    }
    assert_eq!(probe.open("/dev/kfd"), ENXIO, "{out}");
    assert_eq!(probe.open("/dev/dri/renderD128"), ENXIO, "{out}");
    assert_eq!(probe.open("/dev/dri/card1"), EACCES, "{out}");
    let log = hook_log(&d);
    assert!(log.contains(" gave /dev/kfd"), "hook log:\n{log}");
    assert!(
        !log.contains("for the container's user"),
        "hook log:\n{log}"
    );

    let mut config = std::fs::read_to_string(&d.toolkit_config).unwrap();
    config.push_str("\n[devices]\nuser-access = []\n");
    std::fs::write(&d.toolkit_config, config).unwrap();
    let out = d.probe_ok(&args);
    let probe = Probe::parse(&out);
    for path in ["/dev/kfd", "/dev/dri/renderD128", "/dev/dri/card1"] {
        assert_eq!(probe.open(path), EACCES, "{path}, user-access = []:\n{out}");
    }
}

/// `amd-ctk gpu-tracker ARGS` in the fake-hardware namespace (it reads the
/// GPUs), with the daemon's toolkit config (the state file the hook uses).
fn tracker(d: &Dockerd, args: &str) -> String {
    let work = d.work.join("ctk");
    std::fs::create_dir_all(&work).unwrap();
    let script = format!(
        "export AMD_CTK_CONFIG={:?} SYSTEMD_DEVICE_VERIFY_SYSFS=0\n\"$BIN/amd-ctk\" gpu-tracker {args}",
        d.toolkit_config.display().to_string()
    );
    let out = fakehw_sh(&d.fixture, &d.cgroup.to_string(), &work, &script);
    assert!(
        out.status.success(),
        "amd-ctk gpu-tracker {args} failed ({}):\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The GPU tracker on the Docker entry (README.md, "GPU tracker"): enabled
/// (`[gpu-tracker] state-file` in the toolkit config), GPU 0 exclusive.
/// `docker run -d --runtime=amd -e AMD_VISIBLE_DEVICES=0` (A) starts and
/// holds GPU 0; B asking for GPU 0 fails to start, the error naming A's
/// container id, and holds nothing; `docker rm -f A` releases GPU 0 at
/// `poststop` (registered by amd-container-runtime: the state file no
/// longer names A before any tracker command could reclaim it); then C gets
/// GPU 0 and releases it when removed (`--rm`).
#[test]
fn tracker_exclusive_gpu_is_enforced_and_released_on_docker() {
    if !ready() {
        return;
    }
    let start = Instant::now();
    let d = configured_daemon("tracker", Cgroup::V1);
    let state = d.work.join("tracker/state.json");
    let mut config = std::fs::read_to_string(&d.toolkit_config).unwrap();
    config.push_str(&format!(
        "\n[gpu-tracker]\nstate-file = {:?}\n",
        state.display().to_string()
    ));
    std::fs::write(&d.toolkit_config, config).unwrap();
    assert_eq!(
        tracker(&d, "enable"),
        "GPU Tracker has been enabled\n",
        "enable"
    );
    assert_eq!(
        tracker(&d, "0 exclusive"),
        "GPUs [0] have been made exclusive\n"
    );

    let run = |name: &str, args: &[&str]| {
        let mut v = vec!["run", "--name", name, "--network", "none", "--runtime=amd"];
        v.extend_from_slice(&["-e", "AMD_VISIBLE_DEVICES=0"]);
        v.extend_from_slice(args);
        d.docker(&v)
    };
    let ctx = |what: &str, out: &std::process::Output| {
        format!(
            "{what} ({}):\n--- stdout\n{}--- stderr\n{}--- hook log\n{}--- dockerd log\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr),
            hook_log(&d),
            d.log()
        )
    };

    let out = run(
        "tracker-a",
        &["-d", "bb:test", "/bin/busybox", "sleep", "300"],
    );
    assert!(out.status.success(), "{}", ctx("A starts", &out));
    let a = text(&out.stdout).trim().to_string();
    assert_eq!(a.len(), 64, "{}", ctx("A's id", &out));
    let status = tracker(&d, "status");
    assert!(
        tracker_row(&status, 0).ends_with(&format!("Exclusive           {a}")),
        "GPU 0 exclusive, held by A:\n{status}"
    );

    let out = run("tracker-b", &["bb:test", "true"]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{}", ctx("B must not start", &out));
    assert!(
        err.contains(&format!("GPU 0 is exclusive and held by container {a}")),
        "{}",
        ctx("B's error names A", &out)
    );
    let b = d
        .docker_ok(&["inspect", "--format", "{{.Id}}", "tracker-b"])
        .trim()
        .to_string();
    let status = tracker(&d, "status");
    assert!(
        !status.contains(&b)
            && tracker_row(&status, 0).ends_with(&format!("Exclusive           {a}")),
        "a refused container holds nothing (B {b}):\n{status}"
    );
    d.docker_ok(&["rm", "-f", "tracker-b"]);

    d.docker_ok(&["rm", "-f", "tracker-a"]);
    // Before any `amd-ctk gpu-tracker` operation (which would reclaim a dead
    // holder): the state file no longer names A, so the hook released it at
    // poststop (registered by amd-container-runtime).
    let held = std::fs::read_to_string(&state).unwrap();
    assert!(
        !held.contains(&a),
        "`docker rm -f A` releases GPU 0 at poststop, not only by a later reclaim:\n{held}\n--- hook log\n{}",
        hook_log(&d)
    );
    let log = hook_log(&d);
    assert!(
        log.contains(&format!("GPU tracker: released the GPUs of {a}")),
        "the release is logged:\n{log}"
    );
    let status = tracker(&d, "status");
    assert!(
        tracker_row(&status, 0).ends_with("Exclusive           -"),
        "GPU 0 free after A is removed:\n{status}"
    );

    let out = d.probe_ok(&["--runtime=amd", "-e", "AMD_VISIBLE_DEVICES=0"]);
    assert_gpu0_only(&out, "C, after A was removed");
    let status = tracker(&d, "status");
    assert!(
        tracker_row(&status, 0).ends_with("Exclusive           -"),
        "C (--rm) released GPU 0:\n{status}"
    );
    assert!(state.is_file());
    eprintln!("{:.1?}", start.elapsed());
}
