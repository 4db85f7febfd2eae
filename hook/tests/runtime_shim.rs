//! The real `amd-container-runtime` binary against a recording "runtime":
//! every command reaches the low-level runtime with its argv untouched; only
//! `create` / `run` of a GPU container changes `config.json`, by exactly the
//! hook entry.

use serde_json::{json, Value};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SHIM: &str = env!("CARGO_BIN_EXE_amd-container-runtime");

/// Records its arguments (NUL-separated) and its cwd, then exits 0.
const RECORDER: &str = r#"#!/bin/sh
: > "$RECORD.argv"
for a in "$@"; do printf '%s\0' "$a" >> "$RECORD.argv"; done
pwd > "$RECORD.cwd"
"#;

/// The recorder, written once before any test spawns a process: a script
/// written while another thread forks could fail to exec with ETXTBSY.
fn recorder_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("amd-shim-{}-bin", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let runtime = dir.join("fake-runc");
        fs::write(&runtime, RECORDER).unwrap();
        fs::set_permissions(&runtime, fs::Permissions::from_mode(0o755)).unwrap();
        dir
    })
}

struct Env {
    dir: PathBuf,
    config: PathBuf,
    record: PathBuf,
}

impl Env {
    fn new(name: &str) -> Env {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("amd-shim-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let runtime = recorder_dir().join("fake-runc");
        fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.toml");
        fs::write(
            &config,
            format!(
                "[runtime]\nlow-level-runtime = {:?}\nhook-path = \"/opt/amd/bin/amd-container-hook\"\nhook-timeout = 17\n",
                runtime.display().to_string()
            ),
        )
        .unwrap();
        Env {
            record: dir.join("record"),
            dir,
            config,
        }
    }

    fn run_in<S: AsRef<OsStr>>(&self, cwd: &Path, args: &[S]) -> Output {
        let _ = fs::remove_file(self.record.with_extension("argv"));
        let _ = fs::remove_file(self.record.with_extension("cwd"));
        Command::new(SHIM)
            .args(args)
            .current_dir(cwd)
            .env("AMD_CTK_CONFIG", &self.config)
            .env("RECORD", &self.record)
            .output()
            .unwrap()
    }

    fn recorded_argv(&self) -> Vec<String> {
        let raw = fs::read(self.record.with_extension("argv")).expect("the runtime ran");
        raw.split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect()
    }

    fn recorded_cwd(&self) -> PathBuf {
        let s = fs::read_to_string(self.record.with_extension("cwd")).unwrap();
        PathBuf::from(s.trim_end())
    }

    fn bundle(&self, name: &str, env: &[&str]) -> (PathBuf, Vec<u8>) {
        let b = self.dir.join(name);
        fs::create_dir_all(b.join("rootfs")).unwrap();
        // Docker writes compact JSON; keys in its order, a prestart hook of its own.
        let spec = json!({
            "ociVersion": "1.0.2-dev",
            "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
                        "env": env, "cwd": "/"},
            "root": {"path": "/var/lib/docker/overlay2/x/merged"},
            "hostname": "abc",
            "hooks": {"prestart": [{"path": "/proc/123/exe", "args": ["libnetwork-setkey", "-exec-root=/var/run/docker", "abc", "def"]}]},
            "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}, "cgroupsPath": "system.slice:docker:abc"}
        });
        let bytes = serde_json::to_vec(&spec).unwrap();
        fs::write(b.join("config.json"), &bytes).unwrap();
        (b, bytes)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "status {:?}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn other_commands_pass_through_untouched() {
    let env = Env::new("pass");
    let cwd = env.dir.join("somewhere");
    fs::create_dir_all(&cwd).unwrap();
    for args in [
        &["start", "ID"][..],
        &["delete", "ID"],
        &["delete", "--force", "ID"],
        &["state", "ID"],
        &["kill", "ID", "KILL"],
        &["kill", "--all", "ID", "9"],
        &["--version"],
        &["features"],
        &[
            "--root",
            "/run/docker/runtime-runc/moby",
            "--log",
            "/nonexistent/log.json",
            "--log-format",
            "json",
            "start",
            "ID",
        ],
        &[
            "--root",
            "/r",
            "--systemd-cgroup",
            "delete",
            "--force",
            "ID",
        ],
        &["ps", "--format", "json", "ID"],
        &["weird arg with spaces", "--", "x=y"],
    ] {
        let out = env.run_in(&cwd, args);
        ok(&out);
        assert_eq!(env.recorded_argv(), args, "argv of {args:?}");
        assert_eq!(
            env.recorded_cwd(),
            cwd.canonicalize().unwrap(),
            "cwd of {args:?}"
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn docker_create_args(bundle: &Path, dir: &Path) -> Vec<String> {
    let b = bundle.display().to_string();
    vec![
        "--root".into(),
        dir.join("root").display().to_string(),
        "--log".into(),
        dir.join("log.json").display().to_string(),
        "--log-format".into(),
        "json".into(),
        "create".into(),
        "--bundle".into(),
        b.clone(),
        "--pid-file".into(),
        format!("{b}/init.pid"),
        "ID".into(),
    ]
}

#[test]
fn create_without_gpu_request_leaves_config_byte_identical() {
    let env = Env::new("nogpu");
    for (name, vars) in [
        ("plain", &["PATH=/usr/bin:/bin", "HOSTNAME=abc"][..]),
        ("void", &["PATH=/bin", "AMD_VISIBLE_DEVICES=void"]),
        ("empty", &["AMD_VISIBLE_DEVICES="]),
    ] {
        let (bundle, before) = env.bundle(name, vars);
        let mtime = fs::metadata(bundle.join("config.json"))
            .unwrap()
            .modified()
            .unwrap();
        let args = docker_create_args(&bundle, &env.dir);
        let out = env.run_in(&env.dir, &args);
        ok(&out);
        assert_eq!(env.recorded_argv(), args);
        assert_eq!(
            fs::read(bundle.join("config.json")).unwrap(),
            before,
            "{name}"
        );
        assert_eq!(
            fs::metadata(bundle.join("config.json"))
                .unwrap()
                .modified()
                .unwrap(),
            mtime,
            "{name}: not rewritten"
        );
    }
}

/// The hook the runtime registers when its config file is `config` (not the
/// default path, so the hook is told to read the same file).
fn expected_hook(config: &Path) -> Value {
    json!({
        "path": "/opt/amd/bin/amd-container-hook",
        "args": ["amd-container-hook", "createRuntime"],
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            format!("AMD_CTK_CONFIG={}", config.display()),
        ],
        "timeout": 17
    })
}

/// `after` is `before` plus exactly our hook (keys in the same order).
fn assert_only_hook_added(config: &Path, before: &[u8], after: &[u8]) {
    let mut want: Value = serde_json::from_slice(before).unwrap();
    want["hooks"]
        .as_object_mut()
        .unwrap()
        .entry("createRuntime")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .unwrap()
        .push(expected_hook(config));
    let got: Value = serde_json::from_slice(after).unwrap();
    assert_eq!(got, want);
    // Same key order as before, at every level we can see from the text.
    assert_eq!(
        serde_json::to_vec(&got).unwrap(),
        serde_json::to_vec(&want).unwrap()
    );
}

#[test]
fn create_with_gpu_request_adds_only_the_hook() {
    let env = Env::new("gpu");
    for (name, vars) in [
        ("zero", &["PATH=/bin", "AMD_VISIBLE_DEVICES=0"][..]),
        ("all", &["AMD_VISIBLE_DEVICES=all"]),
        ("none", &["AMD_VISIBLE_DEVICES=none"]),
        ("invalid", &["AMD_VISIBLE_DEVICES=nope!"]),
        ("swarm", &["DOCKER_RESOURCE_GPU=0"]),
        (
            "swarm-upstream",
            &["DOCKER_RESOURCE_AMD_GPU=0x1c2b3a4d5e6f7081"],
        ),
    ] {
        let (bundle, before) = env.bundle(name, vars);
        let config = bundle.join("config.json");
        fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
        let args = docker_create_args(&bundle, &env.dir);
        let out = env.run_in(&env.dir, &args);
        ok(&out);
        assert_eq!(env.recorded_argv(), args, "{name}");
        let after = fs::read(&config).unwrap();
        assert_only_hook_added(&env.config, &before, &after);
        assert_eq!(
            fs::metadata(&config).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        // A second create (e.g. a retry) does not add it twice.
        ok(&env.run_in(&env.dir, &args));
        assert_eq!(fs::read(&config).unwrap(), after, "{name}: idempotent");
        let leftovers: Vec<_> = fs::read_dir(&bundle)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != OsStr::new("config.json") && n != OsStr::new("rootfs"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn bundle_spellings_and_cwd() {
    let env = Env::new("spell");
    let gpu = ["AMD_VISIBLE_DEVICES=0"];
    let (b1, before1) = env.bundle("b1", &gpu);
    let (b2, before2) = env.bundle("b2", &gpu);
    let (b3, before3) = env.bundle("b3", &gpu);
    let (b4, before4) = env.bundle("b4", &gpu);
    let cases: Vec<(Vec<String>, &Path, &PathBuf, &Vec<u8>)> = vec![
        (
            vec![
                "create".into(),
                format!("--bundle={}", b1.display()),
                "ID".into(),
            ],
            &env.dir,
            &b1,
            &before1,
        ),
        (
            vec![
                "run".into(),
                "-b".into(),
                b2.display().to_string(),
                "-d".into(),
                "ID".into(),
            ],
            &env.dir,
            &b2,
            &before2,
        ),
        // Relative to the cwd, as runc resolves it.
        (
            vec!["create".into(), "--bundle".into(), "b3".into(), "ID".into()],
            &env.dir,
            &b3,
            &before3,
        ),
        // No --bundle: the cwd is the bundle.
        (
            vec!["--root".into(), "/r".into(), "create".into(), "ID".into()],
            &b4,
            &b4,
            &before4,
        ),
    ];
    for (args, cwd, bundle, before) in cases {
        let out = env.run_in(cwd, &args);
        ok(&out);
        assert_eq!(env.recorded_argv(), args);
        assert_eq!(env.recorded_cwd(), cwd.canonicalize().unwrap());
        assert_only_hook_added(
            &env.config,
            before,
            &fs::read(bundle.join("config.json")).unwrap(),
        );
    }
}

#[test]
fn low_level_runtime_found_in_path() {
    let env = Env::new("path");
    fs::write(
        &env.config,
        "[runtime]\nlow-level-runtime = \"fake-runc\"\n",
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        recorder_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let _ = fs::remove_file(env.record.with_extension("argv"));
    let out = Command::new(SHIM)
        .args(["state", "ID"])
        .env("AMD_CTK_CONFIG", &env.config)
        .env("RECORD", &env.record)
        .env("PATH", path)
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(env.recorded_argv(), ["state", "ID"]);
}

#[test]
fn errors_exit_1_and_reach_runc_log() {
    let env = Env::new("err");
    let missing = env.dir.join("no-such-bundle");
    let args = docker_create_args(&missing, &env.dir);
    let out = env.run_in(&env.dir, &args);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("amd-container-runtime: cannot read "),
        "{stderr}"
    );
    assert!(stderr.contains("no-such-bundle/config.json"), "{stderr}");
    assert!(
        !env.record.with_extension("argv").exists(),
        "runtime not run"
    );
    let log = fs::read_to_string(env.dir.join("log.json")).unwrap();
    let entry: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(entry["level"], "error");
    assert!(
        entry["msg"].as_str().unwrap().contains("cannot read"),
        "{entry}"
    );

    // Not JSON.
    let (bundle, _) = env.bundle("bad", &[]);
    fs::write(bundle.join("config.json"), b"{\"ociVersion\": ").unwrap();
    let args = docker_create_args(&bundle, &env.dir);
    let out = env.run_in(&env.dir, &args);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
    assert_eq!(
        fs::read(bundle.join("config.json")).unwrap(),
        b"{\"ociVersion\": "
    );

    // A runtime that does not exist.
    fs::write(
        &env.config,
        "[runtime]\nlow-level-runtime = \"/nonexistent/runc\"\n",
    )
    .unwrap();
    let out = env.run_in(&env.dir, &["start", "ID"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot run /nonexistent/runc"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A config file we cannot parse.
    fs::write(&env.config, "[runtime]\nlow-level = 1\n").unwrap();
    let out = env.run_in(&env.dir, &["start", "ID"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.toml"));
}

#[test]
fn hook_env_from_config_is_added_to_the_registered_hook() {
    let env = Env::new("hookenv");
    let runtime = recorder_dir().join("fake-runc");
    fs::write(
        &env.config,
        format!(
            "[runtime]\nlow-level-runtime = {:?}\nhook-path = \"/opt/amd/bin/amd-container-hook\"\nhook-timeout = 17\nhook-env = [\"AMD_CTK_CONFIG=/opt/amd/config.toml\", \"PATH=/opt/amd/bin:/usr/bin\"]\n",
            runtime.display().to_string()
        ),
    )
    .unwrap();
    let (bundle, _) = env.bundle("gpu", &["AMD_VISIBLE_DEVICES=0"]);
    let args = docker_create_args(&bundle, &env.dir);
    ok(&env.run_in(&env.dir, &args));
    let spec: Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    // hook-env names the config file itself: it is not added a second time.
    let mut want = expected_hook(&env.config);
    want["env"] = json!([
        "PATH=/opt/amd/bin:/usr/bin",
        "AMD_CTK_CONFIG=/opt/amd/config.toml"
    ]);
    assert_eq!(spec["hooks"]["createRuntime"], json!([want]));

    // An entry that is not NAME=VALUE fails the create; the spec is untouched.
    fs::write(&env.config, "[runtime]\nhook-env = [\"JUSTANAME\"]\n").unwrap();
    let (bundle, before) = env.bundle("bad", &["AMD_VISIBLE_DEVICES=0"]);
    let args = docker_create_args(&bundle, &env.dir);
    let out = env.run_in(&env.dir, &args);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("runtime.hook-env: \"JUSTANAME\""),
        "{stderr}"
    );
    assert_eq!(fs::read(bundle.join("config.json")).unwrap(), before);
}
