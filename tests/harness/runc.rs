//! Running real runc containers on fake hardware (see tests/fakehw/).
//!
//! A [`Session`] is one test's corner: a scratch directory, a private runc
//! state root (`runc --root`), a fixture and a cgroup version. It hands out
//! [`Bundle`]s (a `config.json` edited with serde_json, unique container id,
//! the hook's own config and log file) and runs them with `runc run` inside
//! `tests/fakehw/run-in-fakehw.sh`. Dropping the session deletes (`runc delete
//! -f`) every container still known to its runc root, also when the test
//! panicked; the scratch directory is kept after a failure, for the post-mortem.
//!
//! Everything is per session, so tests run in parallel (cargo's default).
//!
//! The busybox rootfs comes from `tests/fakehw/make-bundle.sh`, built once per
//! repository checkout and shared read-only by the bundles (the spec's root is
//! read-only, and nodes land in the container's `/dev` tmpfs); a test that
//! needs to change the image takes a private copy ([`Bundle::private_rootfs`]).

use crate::probe::probe_args;
use crate::{bin, fixture, repo, text};
use serde_json::{json, Value};
use std::fmt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cgroup {
    V1,
    V2,
}

impl fmt::Display for Cgroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cgroup::V1 => "v1",
            Cgroup::V2 => "v2",
        })
    }
}

/// What the runc tests need on the host; for [`crate::require`].
pub fn prerequisites() -> Result<(), String> {
    if !crate::is_root() {
        return Err("root (mount namespaces, mknod, runc)".into());
    }
    for (tool, package) in [
        ("runc", "runc"),
        ("umockdev-run", "umockdev"),
        ("busybox", "busybox-static"),
        ("unshare", "util-linux"),
        ("python3", "python3"),
    ] {
        if !crate::have(tool) {
            return Err(format!("{tool} (apt-get install {package})"));
        }
    }
    Ok(())
}

/// Whether the runc tests can run here ([`prerequisites`]): skipped with a
/// note outside CI, a failure under CI=true.
pub fn ready() -> bool {
    let p = prerequisites();
    crate::require(p.is_ok(), p.as_ref().err().map_or("", String::as_str))
}

fn scratch_root() -> PathBuf {
    repo().join("target/e2e-scratch")
}

/// The shared busybox bundle template (rootfs + the `runc spec` config).
struct Template {
    rootfs: PathBuf,
    config: Value,
}

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let dir = scratch_root().join("runc-template");
        if !dir.join("config.json").is_file() {
            // Built aside and renamed into place, so a half-made template
            // (interrupted run) is never used.
            std::fs::create_dir_all(scratch_root()).unwrap();
            let tmp = scratch_root().join(format!("runc-template.{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            let out = Command::new(repo().join("tests/fakehw/make-bundle.sh"))
                .arg(&tmp)
                .output()
                .expect("make-bundle.sh runs");
            assert!(
                out.status.success(),
                "make-bundle.sh failed: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            if std::fs::rename(&tmp, &dir).is_err() {
                // Another test process got there first.
                let _ = std::fs::remove_dir_all(&tmp);
            }
        }
        let config = std::fs::read(dir.join("config.json")).unwrap();
        Template {
            rootfs: dir.join("rootfs"),
            config: serde_json::from_slice(&config).unwrap(),
        }
    })
}

/// A container id unique in this test process (and across processes).
fn unique_id(label: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "amde2e-{}-{}-{label}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One test's fake-hardware runc environment.
pub struct Session {
    pub fixture: String,
    pub cgroup: Cgroup,
    /// Scratch directory of the session (bundles live under it).
    pub dir: PathBuf,
    /// `runc --root`: the session's private container state.
    pub runc_root: PathBuf,
    /// `run-in-fakehw.sh --strict-nodes`: kfd and render nodes 0660
    /// root:109 instead of 0666 (see [`Session::strict_nodes`]).
    pub strict_nodes: bool,
}

/// What one command inside the fake-hardware namespace did.
#[derive(Debug)]
pub struct RunOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The hook's log file of the bundle ("" when it wrote none).
    pub hook_log: String,
    pub elapsed: Duration,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

impl fmt::Display for RunOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}--- stderr\n{}--- hook log\n{}",
            self.status, self.stdout, self.stderr, self.hook_log
        )
    }
}

impl Session {
    /// A fresh session named `name` (unique among the tests of this binary)
    /// on `fixture_name`'s fake hardware and cgroup `cgroup`.
    pub fn new(name: &str, fixture_name: &str, cgroup: Cgroup) -> Session {
        fixture(fixture_name); // asserts it exists
        template();
        let dir = crate::scratch(&format!("runc-{name}-{cgroup}"));
        let runc_root = dir.join("runc");
        std::fs::create_dir_all(&runc_root).unwrap();
        Session {
            fixture: fixture_name.into(),
            cgroup,
            dir,
            runc_root,
            strict_nodes: false,
        }
    }

    /// The session's fake hardware gets kfd and render nodes 0660 root:109
    /// (render), as on Ubuntu and RHEL, instead of 0666.
    pub fn strict_nodes(mut self) -> Session {
        self.strict_nodes = true;
        self
    }

    /// A [`Session::bundle`] asking for `AMD_VISIBLE_DEVICES=value`, with the
    /// hook registered at prestart.
    pub fn gpu_bundle(&self, label: &str, value: &str) -> Bundle {
        let mut b = self.bundle(label);
        b.env("AMD_VISIBLE_DEVICES", value).hook("prestart");
        b
    }

    /// A new bundle with a unique container id: the template's spec with the
    /// shared rootfs, running `args` (default: [`crate::probe::PROBE`] without extra paths).
    pub fn bundle(&self, label: &str) -> Bundle {
        let id = unique_id(label);
        let dir = self.dir.join(&id);
        std::fs::create_dir_all(&dir).unwrap();
        let t = template();
        let mut config = t.config.clone();
        config["root"]["path"] = json!(t.rootfs);
        config["process"]["args"] = json!(probe_args(&[]));
        Bundle {
            id,
            dir,
            config,
            hook_config_extra: String::new(),
        }
    }

    /// The `run-in-fakehw.sh … --` command prefix of this session.
    pub fn fakehw(&self) -> Command {
        crate::fakehw_command(
            &self.fixture,
            &self.cgroup.to_string(),
            &scratch_root().join("fakehw-cache"),
            self.strict_nodes,
        )
    }

    /// `runc run ID` of the bundle (its config.json written first), inside the
    /// fake-hardware namespace, in the foreground: runc deletes it on exit.
    pub fn run(&self, b: &Bundle) -> RunOutput {
        b.save();
        let mut c = self.fakehw();
        c.arg("runc")
            .arg("--root")
            .arg(&self.runc_root)
            .arg("run")
            .arg("--bundle")
            .arg(&b.dir)
            .arg(&b.id)
            .current_dir(&b.dir);
        let start = Instant::now();
        let out = c.output().expect("run-in-fakehw.sh runs");
        self.output(out, start.elapsed(), Some(b))
    }

    /// Runs a bash script in the fake-hardware namespace. Its environment has
    /// `RUNC_ROOT` (the session's runc root: use `runc --root "$RUNC_ROOT"`),
    /// `W` (the session dir), `HOOK` (the built hook) and `REPO`.
    pub fn sh(&self, script: &str) -> RunOutput {
        self.sh_with(script, None)
    }

    /// As [`Session::sh`], with `bundle`'s hook log attached to the output.
    pub fn sh_with(&self, script: &str, bundle: Option<&Bundle>) -> RunOutput {
        let mut c = self.fakehw();
        c.args(["bash", "-euo", "pipefail", "-c", script])
            .env("RUNC_ROOT", &self.runc_root)
            .env("W", &self.dir)
            .env("HOOK", bin("amd-container-hook"))
            .env("REPO", repo());
        let start = Instant::now();
        let out = c.output().expect("run-in-fakehw.sh runs");
        self.output(out, start.elapsed(), bundle)
    }

    fn output(&self, out: Output, elapsed: Duration, b: Option<&Bundle>) -> RunOutput {
        RunOutput {
            status: out.status,
            stdout: text(&out.stdout),
            stderr: text(&out.stderr),
            hook_log: b.map(Bundle::hook_log).unwrap_or_default(),
            elapsed,
        }
    }

    /// Ids of the containers the session's runc root still knows.
    pub fn leftover_containers(&self) -> Vec<String> {
        std::fs::read_dir(&self.runc_root)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().join("state.json").is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let left = self.leftover_containers();
        if !left.is_empty() {
            // Same namespace setup as the run, so that runc finds the cgroups
            // (cgroup v2 is only mounted inside it).
            let script =
                r#"for id in "$@"; do runc --root "$RUNC_ROOT" delete -f "$id" || true; done"#;
            let mut c = self.fakehw();
            c.args(["bash", "-c", script, "cleanup"])
                .args(&left)
                .env("RUNC_ROOT", &self.runc_root);
            match c.output() {
                Ok(o) if !o.status.success() => {
                    eprintln!("cleanup of {left:?}: {}", text(&o.stderr))
                }
                Err(e) => eprintln!("cleanup of {left:?}: {e}"),
                _ => {}
            }
        }
        if !std::thread::panicking() && self.leftover_containers().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("kept {} for inspection", self.dir.display());
        }
    }
}

/// An OCI bundle being prepared: `config` is written to `dir/config.json` by
/// [`Bundle::save`] (which [`Session::run`] calls).
pub struct Bundle {
    pub id: String,
    pub dir: PathBuf,
    pub config: Value,
    /// TOML appended to the hook's config file (after its `[hook]` table),
    /// e.g. a `[devices]` table.
    pub hook_config_extra: String,
}

impl Bundle {
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    pub fn save(&self) {
        let mut bytes = serde_json::to_vec_pretty(&self.config).unwrap();
        bytes.push(b'\n');
        std::fs::write(self.config_path(), bytes).unwrap();
    }

    /// The hook's log file, configured by [`Bundle::hook`].
    pub fn hook_log_path(&self) -> PathBuf {
        self.dir.join("hook.log")
    }

    pub fn hook_log(&self) -> String {
        std::fs::read_to_string(self.hook_log_path()).unwrap_or_default()
    }

    /// The config file the hook gets through `AMD_CTK_CONFIG`.
    pub fn hook_config_path(&self) -> PathBuf {
        self.dir.join("hook-config.toml")
    }

    /// Sets (or replaces) `NAME=value` in `process.env`.
    pub fn env(&mut self, name: &str, value: &str) -> &mut Self {
        let env = self.config["process"]["env"]
            .as_array_mut()
            .expect("process.env is an array");
        let prefix = format!("{name}=");
        env.retain(|e| !e.as_str().is_some_and(|s| s.starts_with(&prefix)));
        env.push(json!(format!("{name}={value}")));
        self
    }

    /// Runs the container's process as `uid:gid` (`process.user`).
    pub fn user(&mut self, uid: u32, gid: u32) -> &mut Self {
        self.config["process"]["user"] = json!({"uid": uid, "gid": gid});
        self
    }

    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// Runs [`crate::probe::PROBE`] in the container; `extra` are paths it also opens.
    pub fn probe(&mut self, extra: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(probe_args(extra));
        self
    }

    /// Registers the built hook for `stage` (`prestart`, `createRuntime`) with
    /// an explicit environment: `SYSTEMD_DEVICE_VERIFY_SYSFS=0` (libudev and
    /// the fake /sys) and `AMD_CTK_CONFIG` (log file in the bundle, debug).
    pub fn hook(&mut self, stage: &str) -> &mut Self {
        self.write_hook_config();
        let hook = json!({
            "path": bin("amd-container-hook"),
            "args": ["amd-container-hook", stage],
            "env": self.hook_env(),
        });
        let hooks = self.config.as_object_mut().unwrap().entry("hooks");
        let hooks = hooks.or_insert_with(|| json!({}));
        hooks
            .as_object_mut()
            .unwrap()
            .entry(stage)
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .unwrap()
            .push(hook);
        self
    }

    /// The hook's environment as registered: `["K=V", …]`.
    pub fn hook_env(&self) -> Vec<String> {
        vec![
            "SYSTEMD_DEVICE_VERIFY_SYSFS=0".into(),
            format!("AMD_CTK_CONFIG={}", self.hook_config_path().display()),
        ]
    }

    /// [`Bundle::hook_env`] as shell words for `env -i`: `'K=V' …`.
    pub fn hook_env_sh(&self) -> String {
        let words: Vec<String> = self.hook_env().iter().map(|e| format!("'{e}'")).collect();
        words.join(" ")
    }

    pub fn write_hook_config(&self) {
        let toml = format!(
            "[hook]\nlog-file = \"{}\"\nlog-level = \"debug\"\n{}",
            self.hook_log_path().display(),
            self.hook_config_extra
        );
        std::fs::write(self.hook_config_path(), toml).unwrap();
    }

    /// Bind-mounts host path `source` (as seen inside the fake-hardware
    /// namespace, e.g. a fake `/dev/dri/renderD132`) at `destination`.
    pub fn bind(&mut self, source: &str, destination: &str) -> &mut Self {
        self.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": destination,
            "type": "bind",
            "source": source,
            "options": ["bind"],
        }));
        self
    }

    /// Drops the spec's `/dev` tmpfs: the container's /dev is then the
    /// image's own `dev` directory.
    pub fn without_dev_tmpfs(&mut self) -> &mut Self {
        self.config["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/dev");
        self
    }

    /// Gives the bundle its own copy of the busybox rootfs (for tests that
    /// change the image or look at what was left in it); returns its path.
    pub fn private_rootfs(&mut self) -> PathBuf {
        let rootfs = self.dir.join("rootfs");
        let out = Command::new("cp")
            .arg("-a")
            .arg(&template().rootfs)
            .arg(&rootfs)
            .output()
            .expect("cp runs");
        assert!(out.status.success(), "cp -a rootfs: {}", text(&out.stderr));
        self.config["root"]["path"] = json!(rootfs);
        rootfs
    }

    pub fn rootfs(&self) -> PathBuf {
        PathBuf::from(self.config["root"]["path"].as_str().unwrap())
    }
}
