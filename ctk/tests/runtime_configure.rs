//! `amd-ctk runtime configure` as a user runs it: the real binary on files in
//! a temporary directory.

use serde_json::{json, Value};
use std::fs;
use std::path::Path;

mod support;
use support::{cmd, ctk, fail, json, ok, Dir};

const HOOK_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[test]
fn docker_configure_report_no_change_and_remove() {
    let d = Dir::new("docker");
    let f = d.p("etc/docker/daemon.json");
    let fs_ = f.to_str().unwrap();
    // Missing file (and directory): created, with Docker's CDI on (a restart
    // applies that).
    let (out, _) = ok(&[
        "runtime",
        "configure",
        "--runtime",
        "docker",
        "--config",
        fs_,
    ]);
    assert!(
        out.contains("added runtimes.amd = {\"path\": \"amd-container-runtime\"}"),
        "{out}"
    );
    assert!(out.contains("set features.cdi = true"), "{out}");
    assert!(
        out.contains("To apply: systemctl restart docker\n"),
        "{out}"
    );
    assert_eq!(
        json(&f),
        json!({"runtimes": {"amd": {"path": "amd-container-runtime"}}, "features": {"cdi": true}})
    );
    assert_eq!(
        d.names("etc/docker"),
        ["daemon.json"],
        "no backup of a file that did not exist"
    );
    // Again: no change, not rewritten.
    let mtime = fs::metadata(&f).unwrap().modified().unwrap();
    let (out, _) = ok(&[
        "runtime",
        "configure",
        "--runtime",
        "docker",
        "--config",
        fs_,
    ]);
    assert_eq!(out.trim(), format!("{fs_}: no change"));
    assert_eq!(fs::metadata(&f).unwrap().modified().unwrap(), mtime);
    // The legacy spelling and upstream's flag name; --cdi: already on.
    let (out, _) = ok(&[
        "configure",
        "runtime",
        "--config",
        fs_,
        "--amd-set-as-default",
        "--cdi",
    ]);
    assert!(out.contains("set default-runtime = \"amd\""), "{out}");
    assert!(!out.contains("features.cdi"), "{out}");
    assert!(out.contains("saved as"), "{out}");
    assert_eq!(
        json(&f),
        json!({"runtimes": {"amd": {"path": "amd-container-runtime"}}, "features": {"cdi": true}, "default-runtime": "amd"})
    );
    assert_eq!(d.names("etc/docker"), ["daemon.json", "daemon.json.bak"]);
    let (out, _) = ok(&["runtime", "configure", "--config", fs_, "--remove"]);
    assert!(out.contains("removed runtimes.amd"), "{out}");
    assert!(out.contains("removed features.cdi"), "{out}");
    // Docker's SIGHUP reload ignores keys that are gone: a restart is needed.
    assert!(
        out.ends_with("To apply: systemctl restart docker\n"),
        "{out}"
    );
    assert_eq!(json(&f), json!({}));
    // --no-cdi: the runtime alone, which a SIGHUP applies.
    let (out, _) = ok(&["runtime", "configure", "--config", fs_, "--no-cdi"]);
    assert!(
        out.contains("kill -HUP $(cat /var/run/docker.pid)"),
        "{out}"
    );
    assert_eq!(
        json(&f),
        json!({"runtimes": {"amd": {"path": "amd-container-runtime"}}})
    );
}

#[test]
fn docker_invalid_json_is_an_error_and_untouched() {
    let d = Dir::new("docker-bad");
    let f = d.p("daemon.json");
    let bad = b"{\n  \"log-driver\": \"journald\"\n  \"debug\": true\n}\n";
    fs::write(&f, bad).unwrap();
    let err = fail(&[
        "runtime",
        "configure",
        "--config",
        f.to_str().unwrap(),
        "--set-as-default",
    ]);
    assert!(
        err.starts_with(&format!("amd-ctk: {}: not valid JSON", f.display())),
        "{err}"
    );
    assert!(err.contains("line 3 column 3"), "{err}");
    assert_eq!(fs::read(&f).unwrap(), bad);
    assert_eq!(d.names(""), ["daemon.json"]);
}

#[test]
fn dry_run_prints_the_file_and_changes_nothing() {
    let d = Dir::new("dry");
    let f = d.p("daemon.json");
    let text = "{\n  \"debug\": true\n}\n";
    fs::write(&f, text).unwrap();
    let (out, err) = ok(&[
        "runtime",
        "configure",
        "--config",
        f.to_str().unwrap(),
        "--dry-run",
        "--set-as-default",
    ]);
    assert_eq!(
        out,
        "{\n  \"debug\": true,\n  \"runtimes\": {\n    \"amd\": {\n      \"path\": \"amd-container-runtime\"\n    }\n  },\n  \"default-runtime\": \"amd\",\n  \"features\": {\n    \"cdi\": true\n  }\n}\n"
    );
    assert!(err.contains("(dry run, not written)"), "{err}");
    assert_eq!(fs::read_to_string(&f).unwrap(), text);
    assert_eq!(d.names(""), ["daemon.json"]);
    // containerd, missing file: printed, not created.
    let c = d.p("containerd/config.toml");
    let (out, _) = ok(&[
        "runtime",
        "configure",
        "--runtime",
        "containerd",
        "--config",
        c.to_str().unwrap(),
        "--dry-run",
    ]);
    assert!(out.starts_with("version = 2\n"), "{out}");
    assert!(!d.p("containerd").exists());
    // podman: the hooks JSON on stdout, nothing installed.
    let (out, _) = ok(&[
        "runtime",
        "configure",
        "--runtime",
        "podman",
        "--hooks-dir",
        d.p("hooks").to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["stages"],
        json!(["prestart", "poststop"])
    );
    assert!(!d.p("hooks").exists());
}

/// Two amd-ctk processes at once (one --cdi, one --set-as-default): the
/// lock makes the second read what the first wrote.
#[test]
fn concurrent_processes_keep_both_edits() {
    let d = Dir::new("race");
    for round in 0..20 {
        let f = d.p(&format!("{round}/daemon.json"));
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, "{\"log-level\": \"warn\", \"runtimes\": {\"nvidia\": {\"path\": \"nvidia-container-runtime\"}}}").unwrap();
        let fs_ = f.to_str().unwrap();
        let a = cmd()
            .args(["runtime", "configure", "--config", fs_, "--cdi"])
            .spawn()
            .unwrap();
        let b = cmd()
            .args(["runtime", "configure", "--config", fs_, "--set-as-default"])
            .spawn()
            .unwrap();
        for mut c in [a, b] {
            assert!(c.wait().unwrap().success());
        }
        let mut got = json(&f).as_object().unwrap().clone();
        got.sort_keys();
        let mut want = json!({
            "log-level": "warn",
            "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}, "amd": {"path": "amd-container-runtime"}},
            "features": {"cdi": true},
            "default-runtime": "amd"
        })
        .as_object()
        .unwrap()
        .clone();
        want.sort_keys();
        assert_eq!(got, want, "round {round}");
    }
}

/// A holder that never lets go (a stopped amd-ctk, an admin's `flock`): the
/// run gives up after AMD_CTK_LOCK_TIMEOUT, naming the holder's pid, and
/// leaves the file as it was.
#[test]
fn a_stuck_lock_holder_is_named_after_the_timeout() {
    let d = Dir::new("stuck-lock");
    let f = d.p("daemon.json");
    fs::write(&f, "{}\n").unwrap();
    // The lock of the directory's files: a file named after its device and
    // inode in the lock directory.
    use std::os::unix::fs::MetadataExt;
    let locks = d.p("locks");
    fs::create_dir_all(&locks).unwrap();
    let meta = fs::metadata(f.parent().unwrap()).unwrap();
    let dir =
        fs::File::create(locks.join(format!("configure-{:x}-{}.lock", meta.dev(), meta.ino())))
            .unwrap();
    // Released when it is dropped.
    let dir = nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let start = std::time::Instant::now();
    let out = cmd()
        .args(["runtime", "configure", "--config", f.to_str().unwrap()])
        .env("AMD_CTK_LOCK_TIMEOUT", "1")
        .env("AMD_CTK_LOCK_DIR", &locks)
        .output()
        .unwrap();
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(took < std::time::Duration::from_secs(20), "waited {took:?}");
    assert!(
        stderr.contains(&format!("process {}", std::process::id())),
        "names the holder: {stderr}"
    );
    assert_eq!(fs::read_to_string(&f).unwrap(), "{}\n");
    drop(dir);
}

fn hook_json(path: &Path) -> (String, Vec<String>) {
    let v = json(path);
    assert_eq!(v["version"], "1.0.0");
    assert_eq!(v["hook"]["env"], json!([HOOK_PATH_ENV]));
    assert_eq!(v["when"], json!({"always": true}));
    (
        v["hook"]["path"].as_str().unwrap().to_string(),
        serde_json::from_value(v["stages"].clone()).unwrap(),
    )
}

#[test]
fn podman_hooks_install_switch_and_remove() {
    let d = Dir::new("podman");
    let hooks = d.p("hooks.d");
    let h = hooks.to_str().unwrap();
    let (out, _) = ok(&[
        "runtime",
        "configure",
        "--runtime",
        "podman",
        "--hooks-dir",
        h,
    ]);
    assert!(
        out.contains("podman --hooks-dir"),
        "non-default dir explained: {out}"
    );
    assert_eq!(d.names("hooks.d"), ["amd-container-toolkit.json"]);
    assert_eq!(
        fs::read_to_string(hooks.join("amd-container-toolkit.json")).unwrap(),
        include_str!("../../oci-hooks.d/amd-container-toolkit.json"),
        "the default install is the shipped file"
    );
    let (out, _) = ok(&[
        "runtime",
        "configure",
        "--runtime",
        "podman",
        "--hooks-dir",
        h,
    ]);
    assert!(
        out.contains("amd-container-toolkit.json: no change"),
        "{out}"
    );
    // --precreate replaces the prestart registration; --hook-path is honoured.
    ok(&[
        "runtime",
        "configure",
        "--runtime",
        "podman",
        "--hooks-dir",
        h,
        "--precreate",
        "--hook-path",
        "/opt/amd/amd-container-hook",
    ]);
    assert_eq!(d.names("hooks.d"), ["amd-container-toolkit-precreate.json"]);
    let (path, stages) = hook_json(&hooks.join("amd-container-toolkit-precreate.json"));
    assert_eq!(
        (path.as_str(), stages),
        ("/opt/amd/amd-container-hook", vec!["precreate".to_string()])
    );
    let v = json(&hooks.join("amd-container-toolkit-precreate.json"));
    assert_eq!(
        v["hook"]["args"],
        json!(["amd-container-hook", "precreate"])
    );
    // Back to prestart.
    ok(&[
        "runtime",
        "configure",
        "--runtime",
        "podman",
        "--hooks-dir",
        h,
    ]);
    assert_eq!(d.names("hooks.d"), ["amd-container-toolkit.json"]);
    // Other files in the directory are never touched.
    fs::write(hooks.join("other.json"), "{}").unwrap();
    let (out, _) = ok(&[
        "runtime",
        "configure",
        "--runtime",
        "podman",
        "--hooks-dir",
        h,
        "--remove",
    ]);
    assert!(out.contains("amd-container-toolkit.json: removed"), "{out}");
    assert_eq!(d.names("hooks.d"), ["other.json"]);
    let (out, _) = ok(&[
        "runtime",
        "configure",
        "--runtime",
        "podman",
        "--hooks-dir",
        h,
        "--remove",
    ]);
    assert!(out.contains("no change"), "{out}");
}

#[test]
fn crio_hooks_and_drop_in() {
    let d = Dir::new("crio");
    let hooks = d.p("hooks.d");
    let drop_in = d.p("etc/crio/crio.conf.d/99-amd-container-toolkit.conf");
    fs::create_dir_all(drop_in.parent().unwrap()).unwrap();
    fs::write(
        d.p("etc/crio/crio.conf"),
        "[crio.runtime]\nhooks_dir = [\"/etc/containers/oci/hooks.d\"]\n",
    )
    .unwrap();
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = ["runtime", "configure", "--runtime", "crio", "--hooks-dir"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(hooks.display().to_string());
        v.push("--config".into());
        v.push(drop_in.display().to_string());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&'static str]| {
        let a = args(extra);
        ok(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (out, _) = run(&[]);
    assert!(out.contains("systemctl restart crio"), "{out}");
    assert_eq!(d.names("hooks.d"), ["amd-container-toolkit.json"]);
    let (_, stages) = hook_json(&hooks.join("amd-container-toolkit.json"));
    assert_eq!(stages, ["prestart", "poststop"]);
    let text = fs::read_to_string(&drop_in).unwrap();
    assert!(
        text.ends_with(&format!(
            "[crio.runtime]\nhooks_dir = [\n  \"/etc/containers/oci/hooks.d\",\n  \"{}\",\n]\n",
            hooks.display()
        )),
        "{text}"
    );
    let (out, _) = run(&[]);
    assert!(!out.contains("restart"), "{out}");
    // --precreate is Podman's only.
    let a = args(&["--precreate"]);
    let err = fail(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("only Podman has a precreate stage"), "{err}");
    let (out, _) = run(&["--remove"]);
    assert!(out.contains("removed"), "{out}");
    assert!(d.names("hooks.d").is_empty());
    assert_eq!(d.names("etc/crio/crio.conf.d"), Vec::<String>::new());
}

/// CRI-O's two files change together: when the hooks JSON cannot be written
/// (its directory cannot be made: a regular file is in the way), the drop-in
/// written just before it is taken back, and the admin's drop-in directory
/// is as it was.
#[test]
fn crio_is_all_or_nothing() {
    let d = Dir::new("crio-undo");
    fs::write(d.p("blocker"), "a file, not a directory\n").unwrap();
    let hooks = d.p("blocker/hooks.d");
    let drop_in = d.p("etc/crio/crio.conf.d/99-amd-container-toolkit.conf");
    fs::create_dir_all(drop_in.parent().unwrap()).unwrap();
    let (h, c) = (hooks.display().to_string(), drop_in.display().to_string());
    let err = fail(&[
        "runtime",
        "configure",
        "--runtime",
        "crio",
        "--hooks-dir",
        &h,
        "--config",
        &c,
    ]);
    assert!(err.contains("blocker"), "{err}");
    assert_eq!(d.names("etc/crio/crio.conf.d"), Vec::<String>::new());
    assert_eq!(
        fs::read_to_string(d.p("blocker")).unwrap(),
        "a file, not a directory\n"
    );
}

#[test]
fn options_that_do_not_apply_are_refused() {
    for (args, needle) in [
        (
            &[
                "runtime",
                "configure",
                "--runtime",
                "podman",
                "--set-as-default",
            ][..],
            "--set-as-default does not apply to --runtime podman",
        ),
        (
            &["runtime", "configure", "--runtime", "crio", "--cdi"],
            "--cdi does not apply to --runtime crio",
        ),
        (
            &["runtime", "configure", "--runtime", "podman", "--no-cdi"],
            "--no-cdi does not apply to --runtime podman",
        ),
        (
            &[
                "runtime",
                "configure",
                "--runtime",
                "docker",
                "--hooks-dir",
                "/x",
            ],
            "--hooks-dir does not apply",
        ),
        (
            &[
                "runtime",
                "configure",
                "--runtime",
                "containerd",
                "--precreate",
            ],
            "--precreate does not apply",
        ),
        (
            &[
                "runtime",
                "configure",
                "--runtime",
                "podman",
                "--config",
                "/x",
            ],
            "--config does not apply",
        ),
        (
            &[
                "runtime",
                "configure",
                "--runtime",
                "podman",
                "--hook-path",
                "rel/hook",
            ],
            "must be an absolute path",
        ),
    ] {
        let err = fail(args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // clap: conflicting modes, unknown engine.
    for args in [
        &["runtime", "configure", "--set-as-default", "--remove"][..],
        &[
            "runtime",
            "configure",
            "--set-as-default",
            "--unset-as-default",
        ],
        &["runtime", "configure", "--runtime", "lxc"],
    ] {
        assert_eq!(ctk(args).status.code(), Some(2), "{args:?}");
    }
}

/// Upstream amd-ctk's spellings: `--config-path` and `--unset-amd-as-default`
/// (with `--amd-set-as-default`) do what ours do, on the same file.
#[test]
fn upstream_flag_spellings() {
    let d = Dir::new("upstream-flags");
    let f = d.p("daemon.json");
    let fs_ = f.to_str().unwrap();
    let (out, _) = ok(&[
        "runtime",
        "configure",
        "--runtime",
        "docker",
        "--config-path",
        fs_,
        "--amd-set-as-default",
    ]);
    assert!(out.contains("set default-runtime = \"amd\""), "{out}");
    assert_eq!(
        json(&f),
        json!({"runtimes": {"amd": {"path": "amd-container-runtime"}}, "default-runtime": "amd", "features": {"cdi": true}})
    );
    let (out, _) = ok(&[
        "runtime",
        "configure",
        "--config-path",
        fs_,
        "--unset-amd-as-default",
    ]);
    assert!(out.contains("default-runtime"), "{out}");
    assert_eq!(
        json(&f),
        json!({"runtimes": {"amd": {"path": "amd-container-runtime"}}, "features": {"cdi": true}})
    );
    // Both spellings of one option conflict with --remove alike, and the help
    // names upstream's spellings.
    let e = ctk(&[
        "runtime",
        "configure",
        "--config-path",
        fs_,
        "--unset-amd-as-default",
        "--remove",
    ]);
    assert_eq!(e.status.code(), Some(2));
    let help = String::from_utf8(ctk(&["runtime", "configure", "--help"]).stdout).unwrap();
    for alias in ["config-path", "unset-amd-as-default", "amd-set-as-default"] {
        assert!(help.contains(alias), "{alias} not in help:\n{help}");
    }
}
