//! A GPU request on a host without AMD GPUs fails the container with the
//! reason, on every path the hook serves: the live hook under runc, Podman's
//! precreate filter, and the Docker entry (`amd-container-runtime`, which
//! registers the hook and execs runc). The fixture `no-amdgpu` has no
//! amdgpu driver (no `/sys/module/amdgpu`). Controls: `none` and `void` keep
//! their meaning (the container starts, with no GPU).

use amd_ctk_e2e::engines::runtime_bin;
use amd_ctk_e2e::runc::{ready, Bundle, Cgroup, Session};

const REASON: &str = "no AMD GPU: the amdgpu driver is not loaded";

fn session(name: &str) -> Session {
    Session::new(name, "no-amdgpu", Cgroup::V1)
}

fn live(s: &Session, value: &str) -> amd_ctk_e2e::runc::RunOutput {
    let mut b = s.gpu_bundle(&format!("live-{value}"), value);
    b.probe(&[]);
    s.run(&b)
}

#[test]
fn all_without_a_driver_fails_the_live_hook_with_the_reason() {
    if !ready() {
        return;
    }
    let s = session("nogpu-live");
    for value in ["all", "0"] {
        let out = live(&s, value);
        assert!(!out.success(), "{value} must fail: {out}");
        let said = format!("{out}");
        assert!(
            said.contains(&format!("AMD_VISIBLE_DEVICES={value}: {REASON}")),
            "{value}: {out}"
        );
    }
    for value in ["none", "void"] {
        let out = live(&s, value);
        assert!(out.success(), "{value} starts without a GPU: {out}");
    }
}

/// `amd-container-hook precreate` on the config of `b`: its exit status and
/// what it said.
fn precreate(s: &Session, b: &Bundle) -> amd_ctk_e2e::runc::RunOutput {
    b.save();
    b.write_hook_config();
    s.sh(&format!(
        r#"env -i {} "$HOOK" precreate < '{}' > /dev/null"#,
        b.hook_env_sh(),
        b.config_path().display()
    ))
}

#[test]
fn all_without_a_driver_fails_precreate_with_the_reason() {
    if !ready() {
        return;
    }
    let s = session("nogpu-precreate");
    let mut b = s.bundle("pre-all");
    b.env("AMD_VISIBLE_DEVICES", "all");
    let out = precreate(&s, &b);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains(&format!("AMD_VISIBLE_DEVICES=all: {REASON}")),
        "{out}"
    );
    let mut b = s.bundle("pre-none");
    b.env("AMD_VISIBLE_DEVICES", "none");
    let out = precreate(&s, &b);
    assert!(out.success(), "none is a GPU container with no GPU: {out}");
}

#[test]
fn all_without_a_driver_fails_through_the_docker_entry() {
    if !ready() {
        return;
    }
    let s = session("nogpu-entry");
    let run = |value: &str| {
        let mut b = s.bundle(&format!("entry-{value}"));
        b.env("AMD_VISIBLE_DEVICES", value).probe(&[]);
        b.save();
        let config = b.dir.join("entry.toml");
        std::fs::write(
            &config,
            format!(
                "[hook]\nlog-file = \"{}\"\n[runtime]\nhook-path = \"{}\"\n\
                 hook-env = [\"SYSTEMD_DEVICE_VERIFY_SYSFS=0\"]\n",
                b.hook_log_path().display(),
                amd_ctk_e2e::engines::hook_bin().display()
            ),
        )
        .unwrap();
        s.sh(&format!(
            r#"AMD_CTK_CONFIG='{}' '{}' --root "$RUNC_ROOT" run --bundle '{}' '{}'"#,
            config.display(),
            runtime_bin().display(),
            b.dir.display(),
            b.id
        ))
    };
    let out = run("all");
    assert!(!out.success(), "{out}");
    assert!(
        format!("{out}").contains(&format!("AMD_VISIBLE_DEVICES=all: {REASON}")),
        "{out}"
    );
    let out = run("none");
    assert!(out.success(), "{out}");
}
