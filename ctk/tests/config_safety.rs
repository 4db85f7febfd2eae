//! `amd-ctk runtime configure` never clobbers what the admin did not ask it
//! to change (issue 9, items 3, 4 and 7), proven on the real binary with files
//! in a temporary directory:
//! - a CRI-O config we did not write is edited (comments kept, backup) and
//!   never replaced or deleted;
//! - a runtime called `amd` that is someone else's is never replaced or
//!   removed, in daemon.json and config.toml alike, and the report says so;
//! - a dangling symlink is refused, not replaced; owner, group and mode
//!   survive an edit; a file that cannot be replaced (immutable, read-only
//!   bind mount) gets no backup; a write that fails (disk full) leaves no
//!   backup and no temp file.
//!
//! Tests that need root (chown, chattr, mount) skip with a note when not
//! root, and fail instead under CI=true.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

mod support;
use support::{fail, json, ok, record, Dir, CTK};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Root, or a note (and a failure under CI).
fn root_or_skip(what: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(!in_ci(), "CI=true but this test needs root: {what}");
    eprintln!("note: skipped, needs root: {what}");
    false
}

const CRIO_CONF: &str = "# CRI-O configuration of this site.\n[crio]\nlog_level = \"info\"\n\n[crio.runtime]\n# hooks of the site\nhooks_dir = [\n  \"/etc/containers/oci/hooks.d\",\n]\ncgroup_manager = \"systemd\" # kubelet uses systemd\n";

#[test]
fn crio_conf_we_did_not_write_is_edited_never_replaced_or_deleted() {
    let d = Dir::new("crio-conf");
    fs::create_dir_all(d.p("etc/crio")).unwrap();
    let conf = d.s("etc/crio/crio.conf");
    let hooks = d.s("hooks.d");
    fs::write(&conf, CRIO_CONF).unwrap();
    let base = [
        "runtime",
        "configure",
        "--runtime",
        "crio",
        "--config",
        &conf,
    ];
    let (out, _) = ok(&[&base[..], &["--hooks-dir", &hooks]].concat());
    assert!(
        out.contains(&format!("appended {hooks:?} to [crio.runtime] hooks_dir")),
        "{out}"
    );
    assert!(out.contains("saved as"), "{out}");
    let edited = fs::read_to_string(&conf).unwrap();
    for line in CRIO_CONF.lines() {
        assert!(edited.contains(line), "{line:?} lost:\n{edited}");
    }
    assert!(edited.contains(&format!("  {hooks:?},\n]")), "{edited}");
    assert_eq!(
        fs::read_to_string(format!("{conf}.bak")).unwrap(),
        CRIO_CONF
    );
    // --remove takes back our directory only; the file stays, as it was.
    let (out, _) = ok(&[&base[..], &["--hooks-dir", &hooks, "--remove"]].concat());
    assert!(out.contains("removed"), "{out}");
    assert_eq!(fs::read_to_string(&conf).unwrap(), CRIO_CONF);
    // Again: nothing of ours in it any more, so it is left alone, with a word.
    let (out, _) = ok(&[&base[..], &["--hooks-dir", &hooks, "--remove"]].concat());
    assert!(
        out.contains("left as it is: not written by amd-ctk"),
        "{out}"
    );
    assert_eq!(fs::read_to_string(&conf).unwrap(), CRIO_CONF);
    assert_eq!(d.names("etc/crio"), ["crio.conf", "crio.conf.bak"]);
}

#[test]
fn crio_drop_in_we_did_not_write_is_refused() {
    let d = Dir::new("crio-dropin");
    fs::create_dir_all(d.p("crio.conf.d")).unwrap();
    let theirs = "[crio.runtime]\npids_limit = 2048\n";
    let conf = d.s("crio.conf.d/99-amd-container-toolkit.conf");
    fs::write(&conf, theirs).unwrap();
    let err = fail(&[
        "runtime",
        "configure",
        "--runtime",
        "crio",
        "--config",
        &conf,
        "--hooks-dir",
        "/opt/hooks.d",
    ]);
    assert!(
        err.contains("not written by amd-ctk; left as it is"),
        "{err}"
    );
    ok(&[
        "runtime",
        "configure",
        "--runtime",
        "crio",
        "--config",
        &conf,
        "--remove",
    ]);
    assert_eq!(fs::read_to_string(&conf).unwrap(), theirs);
    // No backup in a directory CRI-O reads every file of.
    assert_eq!(d.names("crio.conf.d"), ["99-amd-container-toolkit.conf"]);
}

#[test]
fn docker_runtime_amd_of_another_vendor_is_left() {
    let d = Dir::new("docker-foreign");
    let f = d.s("daemon.json");
    let theirs = "{\n    \"default-runtime\": \"amd\",\n    \"runtimes\": {\n        \"amd\": {\n            \"path\": \"/opt/vendor/other-runtime\"\n        }\n    }\n}\n";
    fs::write(&f, theirs).unwrap();
    let (out, _) = ok(&["runtime", "configure", "--config", &f, "--remove", "--cdi"]);
    assert!(
        out.contains("left runtimes.amd: not ours (its path is \"/opt/vendor/other-runtime\""),
        "{out}"
    );
    assert!(out.contains("left default-runtime = \"amd\""), "{out}");
    let err = fail(&["runtime", "configure", "--config", &f, "--set-as-default"]);
    assert!(err.contains("runtimes.amd is not ours"), "{err}");
    assert_eq!(fs::read_to_string(&f).unwrap(), theirs);
    assert_eq!(d.names(""), ["daemon.json"]);
}

#[test]
fn containerd_runtime_amd_of_another_vendor_is_left() {
    let d = Dir::new("ctd-foreign");
    let f = d.s("config.toml");
    let theirs = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.amd]\n  runtime_type = \"io.containerd.runc.v2\"\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.amd.options]\n    BinaryName = \"/opt/vendor/other-runtime\"\n";
    fs::write(&f, theirs).unwrap();
    let base = [
        "runtime",
        "configure",
        "--runtime",
        "containerd",
        "--config",
        &f,
    ];
    let err = fail(&base);
    assert!(
        err.contains(
            "runtimes.amd] is not ours (options.BinaryName = \"/opt/vendor/other-runtime\")"
        ),
        "{err}"
    );
    let (out, _) = ok(&[&base[..], &["--remove"]].concat());
    assert!(out.contains("left [plugins"), "{out}");
    assert_eq!(fs::read_to_string(&f).unwrap(), theirs);
    assert_eq!(d.names(""), ["config.toml"]);
}

#[test]
fn dangling_symlink_is_refused_not_replaced() {
    let d = Dir::new("dangling");
    let link = d.p("daemon.json");
    std::os::unix::fs::symlink("/nonexistent/amd-ctk-test/daemon.json", &link).unwrap();
    let err = fail(&["runtime", "configure", "--config", &d.s("daemon.json")]);
    assert!(
        err.contains("a symlink to /nonexistent/amd-ctk-test/daemon.json"),
        "{err}"
    );
    assert!(err.contains("not replaced by a regular file"), "{err}");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    // Nothing to remove through it: no error, nothing touched.
    ok(&[
        "runtime",
        "configure",
        "--config",
        &d.s("daemon.json"),
        "--remove",
    ]);
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(d.names(""), ["daemon.json"]);
}

#[test]
fn edited_files_keep_owner_group_and_mode() {
    if !root_or_skip("chown to another user") {
        return;
    }
    let d = Dir::new("owner");
    for (name, engine, content) in [
        ("daemon.json", "docker", "{}\n"),
        ("config.toml", "containerd", "version = 2\n"),
    ] {
        let f = d.p(name);
        fs::write(&f, content).unwrap();
        std::os::unix::fs::chown(&f, Some(1234), Some(5678)).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        ok(&[
            "runtime",
            "configure",
            "--runtime",
            engine,
            "--config",
            &d.s(name),
        ]);
        assert_ne!(fs::read_to_string(&f).unwrap(), content);
        for p in [f.clone(), d.p(&format!("{name}.bak"))] {
            let m = fs::metadata(&p).unwrap();
            assert_eq!(
                (m.uid(), m.gid(), m.mode() & 0o7777),
                (1234, 5678, 0o640),
                "{}",
                p.display()
            );
        }
    }
}

#[test]
fn immutable_file_is_refused_without_backup() {
    if !root_or_skip("chattr +i") {
        return;
    }
    let d = Dir::new("immutable");
    let f = d.s("daemon.json");
    fs::write(&f, "{}\n").unwrap();
    let chattr = Command::new("chattr").args(["+i", &f]).output();
    if !chattr.is_ok_and(|o| o.status.success()) {
        assert!(!in_ci(), "chattr +i failed on {f}");
        eprintln!("note: skipped, chattr +i is not supported here");
        return;
    }
    let err = fail(&["runtime", "configure", "--config", &f]);
    assert_eq!(d.names(""), ["daemon.json"], "no .bak, no temp file");
    assert!(err.contains("immutable (chattr +i)"), "{err}");
    assert!(err.contains("no backup made"), "{err}");
    assert_eq!(fs::read_to_string(&f).unwrap(), "{}\n");
}

/// Runs `script` as `sh -c` in a new mount namespace (`unshare -m`), with
/// `$CTK` the binary and `$D` the test directory; `None` if that is not
/// possible here.
fn in_mount_ns(d: &Dir, script: &str) -> Option<Output> {
    let probe = Command::new("unshare").args(["-m", "true"]).output().ok()?;
    if !probe.status.success() {
        return None;
    }
    Some(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", script])
            .env("CTK", CTK)
            .env("AMD_CTK_DOCKER_CDI_STATE", record())
            .env("D", d.path())
            .output()
            .unwrap(),
    )
}

#[test]
fn read_only_bind_mounted_file_is_refused_without_backup() {
    if !root_or_skip("mount --bind -o ro") {
        return;
    }
    let d = Dir::new("robind");
    fs::write(d.p("daemon.json"), "{}\n").unwrap();
    let script = "mount --bind $D/daemon.json $D/daemon.json && \
                  mount -o remount,bind,ro $D/daemon.json && \
                  $CTK runtime configure --config $D/daemon.json; echo rc=$?";
    let Some(out) = in_mount_ns(&d, script) else {
        assert!(!in_ci(), "unshare -m failed");
        eprintln!("note: skipped, no mount namespace here");
        return;
    };
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(so.contains("rc=1"), "{so}{se}");
    assert_eq!(d.names(""), ["daemon.json"], "no .bak, no temp file");
    assert!(
        se.contains("on a read-only mount") || se.contains("a mount point"),
        "{se}"
    );
    // A writable bind mount cannot be replaced by rename either.
    let script = "mount --bind $D/daemon.json $D/daemon.json && \
                  $CTK runtime configure --config $D/daemon.json; echo rc=$?";
    let out = in_mount_ns(&d, script).unwrap();
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(so.contains("rc=1"), "{so}{se}");
    assert_eq!(d.names(""), ["daemon.json"]);
    assert!(se.contains("a mount point"), "{se}");
    assert_eq!(fs::read_to_string(d.p("daemon.json")).unwrap(), "{}\n");
}

#[test]
fn failed_write_leaves_no_backup_and_no_temp_file() {
    if !root_or_skip("mount a small tmpfs") {
        return;
    }
    let d = Dir::new("enospc");
    fs::create_dir_all(d.p("fs")).unwrap();
    // A tmpfs with room for exactly one more page once daemon.json is
    // there: the backup and the new file cannot both be written.
    let script = "mount -t tmpfs -o size=64k tmpfs $D/fs && \
                  printf '{\"debug\": true}\\n' > $D/fs/daemon.json && \
                  (dd if=/dev/zero of=$D/fs/fill bs=4096 2>/dev/null; true) && \
                  truncate -s -4096 $D/fs/fill && \
                  $CTK runtime configure --config $D/fs/daemon.json; echo rc=$?; \
                  ls -A $D/fs; cat $D/fs/daemon.json";
    let Some(out) = in_mount_ns(&d, script) else {
        assert!(!in_ci(), "unshare -m failed");
        eprintln!("note: skipped, no mount namespace here");
        return;
    };
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(so.contains("rc=1"), "{so}{se}");
    assert!(se.contains("No space left on device"), "{se}");
    let listing: Vec<&str> = so
        .lines()
        .skip_while(|l| !l.starts_with("rc="))
        .skip(1)
        .take(2)
        .collect();
    assert_eq!(listing, ["daemon.json", "fill"], "{so}");
    assert!(so.ends_with("{\"debug\": true}\n"), "{so}");
}

/// amd-ctk with its own record of Docker's features.cdi; (status, stdout, stderr).
fn with_record(record: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(CTK)
        .env("AMD_CTK_DOCKER_CDI_STATE", record)
        .args(args)
        .output()
        .unwrap();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Docker's CDI switch: on by default, merged into the admin's `features`;
/// `--remove` takes it back only where the record says amd-ctk set it and it
/// still holds amd-ctk's `true`; an admin's `false` is kept unless `--cdi`.
#[test]
fn docker_features_cdi_is_taken_back_only_if_ours() {
    use serde_json::json;
    let d = Dir::new("docker-cdi");
    let rec = d.p("state/docker-cdi.json");
    let f = d.p("daemon.json");
    let fs_ = d.s("daemon.json");
    let run = |args: &[&str]| {
        let (ok, out, err) = with_record(
            &rec,
            &[&["runtime", "configure", "--config", &fs_], args].concat(),
        );
        assert!(ok, "{args:?}: {err}");
        out
    };
    // Ours: set, recorded (record 0600, its lock 0600 in a 0700 locks directory), taken back.
    let admins = json!({"log-level": "warn", "features": {"buildkit": true}});
    fs::write(&f, admins.to_string()).unwrap();
    let out = run(&[]);
    assert!(out.contains("set features.cdi = true"), "{out}");
    assert_eq!(json(&f)["features"], json!({"buildkit": true, "cdi": true}));
    let key = fs::canonicalize(&f).unwrap().display().to_string();
    assert_eq!(
        json(&rec)["features-cdi"][&key],
        json!({"created-features": false})
    );
    let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&rec), 0o600);
    assert_eq!(mode(&d.p("state/locks/docker-cdi.json.lock")), 0o600);
    assert_eq!(mode(&d.p("state/locks")), 0o700);
    let out = run(&["--remove"]);
    assert!(
        out.contains("removed features.cdi (amd-ctk had set it)"),
        "{out}"
    );
    assert_eq!(json(&f), admins);
    assert!(!rec.exists(), "a record without entries is deleted");

    // The control: the admin's own `true` (no record) stays, and is said to.
    let theirs = json!({"features": {"cdi": true}});
    fs::write(&f, theirs.to_string()).unwrap();
    run(&[]);
    assert!(!rec.exists(), "nothing of ours to record");
    let out = run(&["--remove"]);
    assert!(
        out.contains("left features.cdi = true: not set by amd-ctk"),
        "{out}"
    );
    assert_eq!(json(&f), theirs);

    // Ours, then changed by the admin: left, and forgotten.
    fs::write(&f, "{}").unwrap();
    run(&[]);
    let mut changed = json(&f);
    changed["features"]["cdi"] = json!(false);
    fs::write(&f, changed.to_string()).unwrap();
    let out = run(&["--remove"]);
    assert!(out.contains("changed since amd-ctk set it"), "{out}");
    assert_eq!(json(&f)["features"], json!({"cdi": false}));
    assert!(!rec.exists());

    // The admin's false: kept with a note naming --cdi; --cdi replaces it and
    // --remove puts it back; --no-cdi neither sets nor takes back.
    let off = json!({"features": {"cdi": false, "buildkit": true}});
    fs::write(&f, off.to_string()).unwrap();
    let out = run(&[]);
    assert!(
        out.contains("left features.cdi = false: an admin's setting, kept"),
        "{out}"
    );
    assert!(out.contains("--cdi"), "{out}");
    assert_eq!(json(&f)["features"], off["features"]);
    let out = run(&["--cdi"]);
    assert!(out.contains("set features.cdi = true (was false"), "{out}");
    assert_eq!(
        json(&rec)["features-cdi"][&key],
        json!({"was": false, "created-features": false})
    );
    run(&["--remove", "--no-cdi"]);
    assert_eq!(
        json(&f)["features"]["cdi"],
        json!(true),
        "--no-cdi keeps it"
    );
    run(&["--remove"]);
    assert_eq!(json(&f), off);
    fs::write(&f, "{}").unwrap();
    run(&["--no-cdi"]);
    assert_eq!(json(&f).get("features"), None);
    assert!(!rec.exists());
}

/// The record is part of the run: one that does not parse stops it before
/// daemon.json changes; one that cannot be written takes the daemon.json
/// edit back (no backup left).
#[test]
fn docker_cdi_record_failures_change_nothing() {
    let d = Dir::new("docker-cdi-record");
    let rec = d.p("docker-cdi.json");
    let f = d.p("daemon.json");
    let fs_ = d.s("daemon.json");
    fs::write(&f, "{\"debug\": true}\n").unwrap();
    fs::write(&rec, "{\"not\": \"ours\"}").unwrap();
    let (ok, _, err) = with_record(&rec, &["runtime", "configure", "--config", &fs_]);
    assert!(!ok);
    assert!(
        err.contains(&format!("{}: not a record amd-ctk wrote", rec.display())),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&f).unwrap(), "{\"debug\": true}\n");
    assert_eq!(fs::read_to_string(&rec).unwrap(), "{\"not\": \"ours\"}");
    // --no-cdi does not need the record.
    let (ok, _, err) = with_record(
        &rec,
        &["runtime", "configure", "--config", &fs_, "--no-cdi"],
    );
    assert!(ok, "{err}");
    fs::write(&f, "{\"debug\": true}\n").unwrap();
    fs::remove_file(d.p("daemon.json.bak")).unwrap();

    if !root_or_skip("chattr +i") {
        return;
    }
    fs::write(
        &rec,
        "{\"version\": 1, \"features-cdi\": {\"/x/daemon.json\": {}}}\n",
    )
    .unwrap();
    let chattr = Command::new("chattr").arg("+i").arg(&rec).output();
    if !chattr.is_ok_and(|o| o.status.success()) {
        assert!(!in_ci(), "chattr +i failed on {}", rec.display());
        eprintln!("note: skipped, chattr +i is not supported here");
        return;
    }
    let (ok, _, err) = with_record(&rec, &["runtime", "configure", "--config", &fs_]);
    let _ = Command::new("chattr").arg("-i").arg(&rec).output();
    assert!(!ok);
    assert!(err.contains("immutable (chattr +i)"), "{err}");
    assert_eq!(fs::read_to_string(&f).unwrap(), "{\"debug\": true}\n");
    assert_eq!(
        d.names(""),
        ["daemon.json", "docker-cdi.json", "locks"],
        "the daemon.json backup of the taken-back run is gone"
    );
}
