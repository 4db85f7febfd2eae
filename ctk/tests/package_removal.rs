//! `amd-ctk package-removal`, what the deb's prerm and the rpm's %preun run:
//! on a tree configured by `amd-ctk runtime configure` as an admin would, it
//! takes back exactly our Docker entry and default, the features.cdi its
//! record says it set, our hooks JSON and our CRI-O drop-in, and nothing that
//! is not recognisably ours.

use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use support::{json, CTK};

fn root(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("amd-ctk-removal-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn ctk(args: &[&str]) -> Output {
    ctk_env(args, &[])
}

fn ctk_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let out = Command::new(CTK)
        .args(args)
        .env_remove("AMD_CTK_DOCKER_CDI_STATE")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn takes_back_our_docker_entry_hooks_and_drop_in_only() {
    let r = root("full");
    let s = |p: &str| r.join(p.trim_start_matches('/'));
    let daemon = s("/etc/docker/daemon.json");
    fs::create_dir_all(daemon.parent().unwrap()).unwrap();
    let before = json!({"log-level": "warn", "runtimes": {"other": {"path": "/usr/bin/other"}}, "features": {"buildkit": true}});
    fs::write(&daemon, serde_json::to_vec_pretty(&before).unwrap()).unwrap();
    let d = daemon.to_str().unwrap();
    // The record where package-removal --root looks for it.
    let record = s("/var/lib/amd-container-toolkit/docker-cdi.json");
    ctk_env(
        &[
            "runtime",
            "configure",
            "--config-path",
            d,
            "--amd-set-as-default",
        ],
        &[("AMD_CTK_DOCKER_CDI_STATE", &record)],
    );
    assert_eq!(json(&daemon)["default-runtime"], "amd");
    assert_eq!(
        json(&daemon)["features"],
        json!({"buildkit": true, "cdi": true})
    );
    assert!(record.exists());
    let share = s("/usr/share/containers/oci/hooks.d");
    let custom = s("/srv/hooks");
    let drop_in = s("/etc/crio/crio.conf.d/99-amd-container-toolkit.conf");
    let (share_s, custom_s, drop_s) = (
        share.to_str().unwrap(),
        custom.to_str().unwrap(),
        drop_in.to_str().unwrap(),
    );
    ctk(&[
        "runtime",
        "configure",
        "--runtime",
        "podman",
        "--hooks-dir",
        share_s,
        "--precreate",
    ]);
    ctk(&[
        "runtime",
        "configure",
        "--runtime",
        "crio",
        "--hooks-dir",
        custom_s,
        "--config",
        drop_s,
    ]);
    // The drop-in names the directory as CRI-O sees it; make it the one under
    // the test root as seen from the root.
    let text = fs::read_to_string(&drop_in)
        .unwrap()
        .replace(custom_s, "/srv/hooks");
    fs::write(&drop_in, text).unwrap();
    // Not ours: another vendor's hook, and a file with our name running something else.
    fs::write(
        share.join("other-vendor.json"),
        b"{\"hook\": {\"path\": \"/usr/bin/x\"}}",
    )
    .unwrap();
    let etc_hooks = s("/etc/containers/oci/hooks.d");
    fs::create_dir_all(&etc_hooks).unwrap();
    let foreign = br#"{"version": "1.0.0", "hook": {"path": "/usr/local/bin/my-hook", "args": ["my-hook"]}, "when": {"always": true}, "stages": ["prestart"]}"#;
    fs::write(etc_hooks.join("amd-container-toolkit.json"), foreign).unwrap();
    // A CDI spec is the admin's.
    fs::create_dir_all(s("/etc/cdi")).unwrap();
    fs::write(s("/etc/cdi/amd.json"), b"{}").unwrap();

    let out = ctk(&["package-removal", "--root", r.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&out.stdout);

    assert_eq!(json(&daemon), before, "{report}");
    assert!(report.contains("removed features.cdi"), "{report}");
    assert!(!record.exists(), "{report}");
    assert!(
        !share.join("amd-container-toolkit-precreate.json").exists(),
        "{report}"
    );
    assert!(
        !custom.join("amd-container-toolkit.json").exists(),
        "{report}"
    );
    assert!(!drop_in.exists(), "{report}");
    assert!(share.join("other-vendor.json").exists());
    assert_eq!(
        fs::read(etc_hooks.join("amd-container-toolkit.json")).unwrap(),
        foreign
    );
    assert!(
        report.contains("not amd-container-hook; left as it is"),
        "{report}"
    );
    assert!(s("/etc/cdi/amd.json").exists());
    // Twice: nothing left to do, nothing changes, still success.
    let again = ctk(&["package-removal", "--root", r.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&again.stdout).contains("removed"));
    assert_eq!(json(&daemon), before);
    fs::remove_dir_all(&r).unwrap();
}

#[test]
fn a_docker_amd_runtime_that_is_not_ours_stays() {
    let r = root("foreign");
    let daemon = r.join("etc/docker/daemon.json");
    fs::create_dir_all(daemon.parent().unwrap()).unwrap();
    // Another vendor's runtime `amd`, and the admin's own features.cdi (no record).
    let theirs = json!({"default-runtime": "amd", "runtimes": {"amd": {"path": "/opt/vendor/bin/amd-runc"}}, "features": {"cdi": true}});
    fs::write(&daemon, theirs.to_string()).unwrap();
    let out = ctk(&["package-removal", "--root", r.to_str().unwrap()]);
    assert_eq!(json(&daemon), theirs);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("left runtimes.amd: not ours"), "{report}");
    assert!(
        report.contains("left features.cdi = true: not set by amd-ctk"),
        "{report}"
    );
    // Unparsable: untouched, byte for byte.
    fs::write(&daemon, b"{ not json").unwrap();
    ctk(&["package-removal", "--root", r.to_str().unwrap()]);
    assert_eq!(fs::read(&daemon).unwrap(), b"{ not json");
    // Nothing there at all: success, nothing created.
    let empty = root("empty");
    ctk(&["package-removal", "--root", empty.to_str().unwrap()]);
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
    fs::remove_dir_all(&r).unwrap();
    fs::remove_dir_all(&empty).unwrap();
}
