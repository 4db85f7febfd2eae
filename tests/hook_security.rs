//! The hook as an attacker and a careless admin would try it (issue 9), under
//! real runc on fake hardware (see harness/runc.rs): a host directory
//! bind-mounted at /dev/dri, a state pointing at the host's own namespace or
//! the root cgroup, forged and huge log input, loose input (no bundle, a
//! symlinked root, a NUL in root.path, a FIFO config.json), and the admin's
//! `allow-unprivileged-requests` policy on the live and precreate paths.
//! (The mknod/chown race is proven deterministically by a unit test in
//! hook/src/rootfs.rs, which swaps the node between the two steps.)

use amd_ctk_e2e::probe::Probe;
use amd_ctk_e2e::runc::{ready, Bundle, Cgroup, RunOutput, Session};
use amd_ctk_e2e::*;

fn gpu0_bundle(s: &Session, label: &str) -> Bundle {
    let mut b = s.gpu_bundle(label, "0");
    b.probe(&["/dev/kfd", "/dev/dri/renderD128"]);
    b
}

/// Runs the built hook directly (as a runtime would: explicit environment,
/// the state on stdin) inside the fake-hardware namespace. `setup` is bash
/// run first; it may set `PID` (default: 1; another is killed at the end,
/// so start it with its stdio detached) and `BUNDLE` (default: the bundle's
/// dir) and `CWD`. Prints `exit=N` last.
fn run_hook(s: &Session, b: &Bundle, stage: &str, setup: &str, state: Option<&str>) -> RunOutput {
    b.save();
    b.write_hook_config();
    let state = state.map_or_else(
        || r#"{"ociVersion":"1.0.2","id":"'"$ID"'","status":"creating","pid":'"$PID"',"bundle":"'"$BUNDLE"'"}"#.to_string(),
        str::to_string,
    );
    let script = format!(
        r#"ID='{id}'; PID=1; BUNDLE='{dir}'; CWD='{dir}'
{setup}
cd "$CWD"
set +e
echo '{state}' | timeout 20 env -i {env} "$HOOK" {stage}
status=$?
[ "$PID" = 1 ] || kill "$PID" 2>/dev/null
echo "exit=$status"
"#,
        id = b.id,
        dir = b.dir.display(),
        env = b.hook_env_sh(),
    );
    s.sh_with(&script, Some(b))
}

fn exit_code(out: &RunOutput) -> i32 {
    out.stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("exit="))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no exit status: {out}"))
}

// ---------------------------------------------------------------------------

on_v1_and_v2!(
    /// A host directory bind-mounted at /dev/dri: the hook refuses to make
    /// nodes there (they would stay on the host after the container), runc
    /// fails naming the directory, and the host directory stays empty.
    host_directory_at_dev_dri_gets_no_nodes => bind_scenario
);

fn bind_scenario(cg: Cgroup) {
    let s = Session::new("bind-dri", "mi300x-8", cg);
    let host_dir = s.dir.join("host-dri");
    std::fs::create_dir_all(&host_dir).unwrap();
    let mut b = gpu0_bundle(&s, "bind-dri");
    b.bind(host_dir.to_str().unwrap(), "/dev/dri");
    let out = s.run(&b);
    let left: Vec<_> = std::fs::read_dir(&host_dir).unwrap().collect();
    assert!(
        left.is_empty(),
        "nodes were left in the host directory: {out}"
    );
    assert!(!out.success(), "the run must fail: {out}");
    assert!(
        out.stderr
            .contains("/dev/dri is a mount of another filesystem"),
        "the error names the directory and why: {out}"
    );
    assert!(s.leftover_containers().is_empty(), "{out}");
}

/// A state whose pid is a host process (the hook's own mount namespace), and
/// one whose process sits in the root cgroup: refused, nothing created.
#[test]
fn host_namespace_and_root_cgroup_are_refused() {
    if !ready() {
        return;
    }
    for cg in [Cgroup::V1, Cgroup::V2] {
        let s = Session::new("hostns", "mi300x-8", cg);
        let mut b = s.bundle("hostns");
        b.env("AMD_VISIBLE_DEVICES", "0");
        let rootfs = b.private_rootfs();
        let out = run_hook(
            &s,
            &b,
            "prestart",
            "sleep 60 </dev/null >/dev/null 2>&1 & PID=$!",
            None,
        );
        assert_ne!(exit_code(&out), 0, "{cg}: host namespace accepted: {out}");
        assert!(
            out.stderr.contains("shares the hook's own mount namespace"),
            "{cg}: {out}"
        );
        assert!(
            std::fs::symlink_metadata(rootfs.join("dev/kfd")).is_err(),
            "{cg}: a node was made on the host: {out}"
        );
        // Another mount namespace, but the root cgroup.
        let root_procs = match cg {
            Cgroup::V1 => "/sys/fs/cgroup/devices/cgroup.procs",
            Cgroup::V2 => "/sys/fs/cgroup/cgroup.procs",
        };
        let setup = format!(
            "unshare -m --propagation private sleep 60 </dev/null >/dev/null 2>&1 & PID=$!; sleep 0.2; echo $PID > {root_procs}"
        );
        let out = run_hook(&s, &b, "prestart", &setup, None);
        assert_ne!(exit_code(&out), 0, "{cg}: root cgroup accepted: {out}");
        assert!(
            out.stderr.contains("refusing to change the root"),
            "{cg}: {out}"
        );
    }
}

/// A request value with a newline and a forged log line, and a 1 MB value:
/// the log keeps one line per event, each with the real container id, and
/// neither stderr nor the log grows with the value.
#[test]
fn log_lines_cannot_be_forged_or_flooded() {
    if !ready() {
        return;
    }
    let s = Session::new("logforge", "mi300x-8", Cgroup::V1);
    let forged = "0\n2026-01-01T00:00:00.000Z [victim] INFO  AMD_VISIBLE_DEVICES=0: gave /dev/kfd";
    let b = s.gpu_bundle("logforge", forged);
    let out = s.run(&b);
    assert!(!out.success(), "{out}");
    assert!(!out.hook_log.is_empty(), "{out}");
    for line in out.hook_log.lines() {
        assert!(
            line.contains(&format!("[{}]", b.id)) && !line.starts_with("2026-01-01"),
            "a line not written by the hook for this container: {line:?}\n{out}"
        );
    }
    assert!(out.hook_log.contains("\\n2026-01-01"), "escaped: {out}");

    let b = s.gpu_bundle("logflood", &"9".repeat(1 << 20));
    let out = s.run(&b);
    assert!(!out.success(), "{}", out.status);
    assert!(
        out.stderr.len() < 32 << 10 && out.hook_log.len() < 32 << 10,
        "stderr {} bytes, log {} bytes for a 1 MB value",
        out.stderr.len(),
        out.hook_log.len()
    );
    assert!(out.hook_log.contains("more bytes)"), "cut with a note");
}

/// Loose input gets a clear error, quickly, and never a panic: a state
/// without a bundle (a config.json in the current directory must not be
/// read), a root.path that is a symlink, a NUL in root.path, a config.json
/// that is a FIFO.
#[test]
fn loose_input_is_refused_clearly() {
    if !ready() {
        return;
    }
    let s = Session::new("loose", "mi300x-8", Cgroup::V1);

    let mut b = s.bundle("nobundle");
    b.env("AMD_VISIBLE_DEVICES", "0");
    let no_bundle = r#"{"ociVersion":"1.0.2","id":"x","status":"creating","pid":1}"#;
    let out = run_hook(&s, &b, "prestart", "", Some(no_bundle));
    assert_ne!(exit_code(&out), 0, "{out}");
    assert!(out.stderr.contains("bundle"), "names the bundle: {out}");

    let mut b = gpu0_bundle(&s, "symroot");
    let rootfs = b.private_rootfs();
    let link = b.dir.join("rootfs-link");
    std::os::unix::fs::symlink(&rootfs, &link).unwrap();
    b.config["root"]["path"] = serde_json::json!(link);
    let out = s.run(&b);
    assert!(!out.success(), "a symlinked root.path was followed: {out}");
    assert!(out.stderr.contains("symlink"), "{out}");

    let mut b = s.bundle("nul");
    b.env("AMD_VISIBLE_DEVICES", "0");
    b.config["root"]["path"] = serde_json::json!("root\u{0}fs");
    let out = run_hook(
        &s,
        &b,
        "prestart",
        "sleep 60 </dev/null >/dev/null 2>&1 & PID=$!",
        None,
    );
    assert_eq!(exit_code(&out), 1, "an error, not an abort: {out}");
    assert!(out.stderr.contains("NUL"), "{out}");

    let b = s.bundle("fifo");
    let setup = r#"BUNDLE=$(mktemp -d); mkfifo "$BUNDLE/config.json""#;
    let out = run_hook(&s, &b, "prestart", setup, None);
    assert_ne!(exit_code(&out), 124, "the hook blocked on a FIFO: {out}");
    assert_ne!(exit_code(&out), 0, "{out}");
    assert!(out.stderr.contains("a FIFO"), "{out}");
}

on_v1_and_v2!(
    /// `[hook] allow-unprivileged-requests = false`: an unprivileged
    /// container's request fails the run naming the key; a container with
    /// CAP_SYS_ADMIN in its bounding set gets GPU 0; precreate refuses the
    /// unprivileged spec too.
    admin_policy_refuses_unprivileged_requests => policy_scenario
);

fn policy_scenario(cg: Cgroup) {
    let s = Session::new("policy", "mi300x-8", cg);
    let strict = |b: &Bundle| {
        let mut text = std::fs::read_to_string(b.hook_config_path()).unwrap();
        text.push_str("allow-unprivileged-requests = false\n");
        std::fs::write(b.hook_config_path(), text).unwrap();
    };
    let b = gpu0_bundle(&s, "unpriv");
    strict(&b);
    // The bundle's config file is written by hook(); run() keeps it.
    let out = s.run(&b);
    assert!(!out.success(), "unprivileged request served: {out}");
    assert!(
        out.stderr.contains("allow-unprivileged-requests = false"),
        "names the key: {out}"
    );

    let mut b = gpu0_bundle(&s, "priv");
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!("CAP_SYS_ADMIN"));
    }
    strict(&b);
    let out = s.run(&b);
    assert!(out.success(), "privileged container refused: {out}");
    let probe = Probe::parse(&out.stdout);
    assert_eq!(probe.open("/dev/kfd"), ENXIO, "{out}");
    assert_eq!(probe.open("/dev/dri/renderD128"), ENXIO, "{out}");

    let b = s.bundle("precreate");
    let mut b2 = b;
    b2.env("AMD_VISIBLE_DEVICES", "0");
    b2.save();
    b2.write_hook_config();
    strict(&b2);
    let script = format!(
        "set +e; env -i {} \"$HOOK\" precreate < '{}'; echo \"exit=$?\"",
        b2.hook_env_sh(),
        b2.config_path().display()
    );
    let out = s.sh_with(&script, Some(&b2));
    assert_ne!(
        exit_code(&out),
        0,
        "precreate served an unprivileged spec: {out}"
    );
    assert!(out.stderr.contains("allow-unprivileged-requests"), "{out}");
}

/// A container id with a newline and a forged line in it: the `[ID]` prefix
/// is escaped like the messages, so every line of the log is the hook's.
#[test]
fn a_container_id_cannot_forge_a_log_line() {
    if !ready() {
        return;
    }
    let s = Session::new("idforge", "mi300x-8", Cgroup::V1);
    let mut b = s.bundle("idforge");
    b.env("AMD_VISIBLE_DEVICES", "0");
    // PID 1: refused (the host's namespace), which the hook logs.
    let state = r#"{"ociVersion":"1.0.2","id":"x\n1999-01-01T00:00:00.000Z [victim] INFO  AMD_VISIBLE_DEVICES=0: gave /dev/kfd","status":"creating","pid":1,"bundle":"'"$BUNDLE"'"}"#;
    let out = run_hook(&s, &b, "prestart", "", Some(state));
    assert_ne!(exit_code(&out), 0, "{out}");
    assert!(!out.hook_log.is_empty(), "{out}");
    for line in out.hook_log.lines() {
        assert!(
            !line.starts_with("1999-01-01"),
            "a line not written by the hook: {line:?}\n{out}"
        );
    }
    assert!(
        out.hook_log.contains("[x\\n1999-01-01"),
        "the id is escaped: {out}"
    );
}

/// A state whose pid is in PID 1's mount namespace while the hook runs in
/// another: refused, no node made through that namespace. The scene gets a
/// PID namespace of its own (`unshare -p --mount-proc`), so that PID 1 is a
/// shell of the test's, in the mount namespace standing for the host's;
/// the hook runs in a private one below it (a runtime in a private mount
/// namespace). Control: the same process in a mount namespace of its own
/// gets GPU 0.
#[test]
fn a_pid_in_pid1s_mount_namespace_is_refused() {
    if !ready() {
        return;
    }
    let s = Session::new("pid1ns", "mi300x-8", Cgroup::V1);
    let mut b = s.bundle("pid1ns");
    b.env("AMD_VISIBLE_DEVICES", "0");
    let rootfs = b.private_rootfs();
    std::fs::create_dir_all(rootfs.join("dev")).unwrap();
    b.save();
    b.write_hook_config();
    let env = b.hook_env_sh();
    // The process sits in a devices cgroup of its own (not the root one,
    // which is refused for another reason).
    let inner = format!(
        r#"
CG=/sys/fs/cgroup/devices/amd-ctk-pid1ns-$RANDOM
try() {{
    mkdir -p "$CG"
    $1 sleep 60 </dev/null >/dev/null 2>&1 & PID=$!
    sleep 0.3; echo "$PID" > "$CG/cgroup.procs"
    echo '{{"ociVersion":"1.0.2","id":"{id}","status":"creating","pid":'"$PID"',"bundle":"{dir}"}}' \
        | unshare -m --propagation private env -i {env} "$HOOK" prestart; echo "exit=$?"
    kill "$PID"; wait "$PID" 2>/dev/null || true; rmdir "$CG"
}}
echo "== pid1 $$"
echo "== host"; try ""
echo "== kfd after host"; [ -e '{rootfs}/dev/kfd' ] && echo made || echo absent
echo "== own"; try "unshare -m --propagation private"
echo "== end"
"#,
        id = b.id,
        dir = b.dir.display(),
        rootfs = rootfs.display(),
    );
    let script = format!(
        "set +e\nunshare -p -f --mount-proc bash -c '{}'",
        inner.replace('\'', "'\\''")
    );
    let out = s.sh_with(&script, Some(&b));
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("== pid1 1\n"),
        "the scene's shell is PID 1: {out}"
    );
    let host = section(&all, "host");
    assert!(
        !host.contains("exit=0"),
        "PID 1's namespace accepted: {out}"
    );
    assert!(out.stderr.contains("mount namespace of PID 1"), "{out}");
    assert!(
        all.contains("== kfd after host\nabsent"),
        "a node was made through PID 1's namespace: {out}"
    );
    let own = section(&all, "own");
    assert!(
        own.contains("exit=0"),
        "the control (a namespace of its own) failed: {out}"
    );
}

/// An image's `AMD_VISIBLE_DEVICES=all` beside Swarm's assignment
/// `DOCKER_RESOURCE_AMD_GPU=1`: refused, naming both; narrowing and
/// repeating the assignment are served, with exactly GPU 1.
#[test]
fn an_orchestrator_assignment_is_never_widened() {
    if !ready() {
        return;
    }
    let s = Session::new("swarm", "mi300x-8", Cgroup::V1);
    let mut b = s.bundle("swarm-wide");
    b.env("DOCKER_RESOURCE_AMD_GPU", "1")
        .env("AMD_VISIBLE_DEVICES", "all")
        .hook("prestart");
    b.probe(&[]);
    let out = s.run(&b);
    assert!(!out.success(), "the assignment was widened: {out}");
    assert!(
        out.stderr.contains("AMD_VISIBLE_DEVICES=all")
            && out.stderr.contains("DOCKER_RESOURCE_AMD_GPU=1"),
        "names both: {out}"
    );
    let mut b = s.bundle("swarm-same");
    b.env("DOCKER_RESOURCE_AMD_GPU", "0-3")
        .env("AMD_VISIBLE_DEVICES", "1")
        .hook("prestart");
    b.probe(&[]);
    let out = s.run(&b);
    assert!(out.success(), "narrowing refused: {out}");
    let renders: Vec<String> = Probe::parse(&out.stdout)
        .paths()
        .into_iter()
        .filter(|p| p.starts_with("/dev/dri/renderD"))
        .collect();
    assert_eq!(renders.len(), 1, "exactly GPU 1: {out}");
    assert!(
        out.hook_log
            .contains(&format!("gave /dev/kfd /dev/dri/card5 {}", renders[0])),
        "GPU 1 (card5): {out}"
    );
}

/// The Docker entry (`amd-container-runtime`) with the bundle after the id
/// (`runc create ID --bundle B`, which runc accepts), run from another GPU
/// bundle's directory: B gets the hook and the container is created; the
/// other bundle is byte for byte as it was. A command line runc would
/// reject is refused before anything is edited.
#[test]
fn the_docker_entry_finds_the_bundle_after_the_id() {
    if !ready() {
        return;
    }
    let s = Session::new("shim-bundle", "mi300x-8", Cgroup::V1);
    let mut b = s.bundle("target");
    b.env("AMD_VISIBLE_DEVICES", "0")
        .args(&["/bin/busybox", "sleep", "60"]);
    b.save();
    b.write_hook_config();
    let mut c = s.bundle("cwd");
    c.env("AMD_VISIBLE_DEVICES", "1");
    c.save();
    let mut d = s.bundle("unclear");
    d.env("AMD_VISIBLE_DEVICES", "0");
    d.save();
    let runtime_toml = s.dir.join("runtime.toml");
    std::fs::write(
        &runtime_toml,
        format!(
            "[hook]\nlog-file = {:?}\n[runtime]\nhook-path = {:?}\nhook-env = [{}]\n",
            b.hook_log_path().display().to_string(),
            bin("amd-container-hook").display().to_string(),
            b.hook_env()
                .iter()
                .map(|e| format!("{e:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .unwrap();
    let before_c = std::fs::read(c.config_path()).unwrap();
    let before_d = std::fs::read(d.config_path()).unwrap();
    let script = format!(
        r#"
export AMD_CTK_CONFIG='{toml}'
RT='{runtime}'
cd '{c}'
set +e
echo "== after"; "$RT" --root "$RUNC_ROOT" create {b_id} --bundle '{b}' </dev/null >/dev/null 2>"$W/b.err"; echo "exit=$?"; cat "$W/b.err"
runc --root "$RUNC_ROOT" delete -f {b_id} 2>/dev/null
echo "== unclear"; "$RT" --root "$RUNC_ROOT" create --no-pivot {d_id} --bundle '{d}' </dev/null 2>&1; echo "exit=$?"
runc --root "$RUNC_ROOT" delete -f {d_id} 2>/dev/null
echo "== end"
"#,
        toml = runtime_toml.display(),
        runtime = bin("amd-container-runtime").display(),
        c = c.dir.display(),
        b = b.dir.display(),
        b_id = b.id,
        d = d.dir.display(),
        d_id = d.id,
    );
    let out = s.sh_with(&script, Some(&b));
    let all = format!("{}{}", out.stdout, out.stderr);
    let after = section(&all, "after");
    let unclear = section(&all, "unclear");
    assert_eq!(
        std::fs::read(c.config_path()).unwrap(),
        before_c,
        "the cwd's bundle was edited: {out}"
    );
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.config_path()).unwrap()).unwrap();
    let hooks = spec["hooks"]["createRuntime"].to_string();
    assert!(
        hooks.contains("amd-container-hook"),
        "the named bundle did not get the hook: {spec}\n{out}"
    );
    assert!(after.contains("exit=0"), "{out}");
    assert!(!unclear.contains("exit=0"), "{out}");
    assert!(unclear.contains("cannot tell which bundle"), "{out}");
    assert_eq!(
        std::fs::read(d.config_path()).unwrap(),
        before_d,
        "an unclear command line edited a bundle: {out}"
    );
    assert!(s.leftover_containers().is_empty(), "{out}");
}
