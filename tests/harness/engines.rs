//! Real container engines (podman, dockerd) on the fake hardware of
//! tests/fakehw/, configured by `amd-ctk runtime configure`.
//!
//! - The container side: [`crate::probe::PROBE`] run in a busybox image
//!   (`localhost/bb:test` / `bb:test`, imported from tests/fakehw/make-bundle.sh's
//!   rootfs), judged by [`crate::probe::assert_gpu0_only`] /
//!   [`crate::probe::assert_no_gpu`] with the device oracle of README.md,
//!   "Testing without a GPU".
//! - [`Dockerd`]: a private dockerd inside the fake-hardware mount namespace,
//!   stopped (and its state removed) when dropped, also when the test panics.
//!   The host's Docker (daemon, /etc/docker, /run/docker, /var/lib/docker,
//!   ~/.docker) is never used or touched.

use crate::probe::{probe_args, probe_targets};
use crate::runc::Cgroup;
use crate::{bin, fakehw_command, fixture, repo, text};
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Whether the podman tests can run here (root, podman and runc; see
/// [`crate::require`]).
pub fn podman_ready() -> bool {
    crate::require(crate::is_root(), "root (mount namespaces, podman)")
        && crate::require(
            crate::have("podman") && crate::have("runc"),
            "podman and runc (apt-get install podman runc)",
        )
}

/// The toolkit config file of a test: the hook logs to `log` at debug level;
/// `runtime` is an extra `[runtime]` section body (may be empty).
pub fn toolkit_config(log: &Path, runtime: &str) -> String {
    let mut s = format!(
        "[hook]\nlog-file = {:?}\nlog-level = \"debug\"\n",
        log.display().to_string()
    );
    if !runtime.is_empty() {
        s.push_str("\n[runtime]\n");
        s.push_str(runtime);
    }
    s
}

/// What dockerd writes on the host even with private data/exec roots (its
/// trust key, the plugin socket dir), or could write (a client's config):
/// none of these may appear because of a test.
pub const DOCKER_HOST_PATHS: &[&str] = &[
    "/etc/docker",
    "/run/docker",
    "/run/containerd",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/root/.docker",
];

/// Which of `paths` exist.
pub fn existing(paths: &[&str]) -> Vec<String> {
    paths
        .iter()
        .filter(|p| Path::new(p).symlink_metadata().is_ok())
        .map(|p| p.to_string())
        .collect()
}

/// A private dockerd (20.10 here) running in the fake-hardware mount
/// namespace: own `--config-file` (`work/daemon.json`), `--data-root`,
/// `--exec-root`, `--pidfile` and `-H unix://` socket. Inside its namespace
/// /etc is an overlay whose upper layer is under `work` (so /etc/docker/key.json
/// lands there) and /run is a fresh tmpfs (so /run/docker/plugins and
/// containerd's shim sockets land there, and a host containerd's socket is not
/// seen: dockerd starts its own containerd). The `docker` client runs on the
/// host side with its own `DOCKER_CONFIG` and `HOME` under `work`.
///
/// `AMD_CTK_CONFIG` in dockerd's environment (→ containerd → shim →
/// amd-container-runtime) is [`Dockerd::toolkit_config`].
pub struct Dockerd {
    pub fixture: String,
    pub cgroup: Cgroup,
    /// The test's scratch directory.
    pub work: PathBuf,
    /// `--config-file`.
    pub daemon_json: PathBuf,
    /// The toolkit config amd-container-runtime (and the hook) read.
    pub toolkit_config: PathBuf,
    /// The hook's log file, set in [`Dockerd::toolkit_config`] by the test.
    pub hook_log: PathBuf,
    /// A short directory under /tmp: `--exec-root` and the socket (unix
    /// socket paths are limited to 108 bytes).
    pub exec_root: PathBuf,
    pub socket: PathBuf,
    /// `run-in-fakehw.sh --strict-nodes` (kfd and render 0660 root:109),
    /// with `SYSTEMD_DEVICE_VERIFY_SYSFS=0` in dockerd's environment, which
    /// amd-container-runtime inherits and needs then (it looks the nodes
    /// up through libudev for a non-root user). Set before [`Dockerd::start`].
    pub strict_nodes: bool,
    child: Option<Child>,
    starts: usize,
    /// [`DOCKER_HOST_PATHS`] that existed before the first start.
    host_before: Vec<String>,
}

impl Dockerd {
    /// Prepares (does not start) a daemon for test `name`; `daemon_json` is
    /// written as the initial `--config-file`.
    pub fn new(name: &str, fixture_name: &str, cgroup: Cgroup, daemon_json: &str) -> Dockerd {
        fixture(fixture_name);
        remove_stale_exec_roots();
        let work = crate::scratch(&format!("dockerd-{name}-{cgroup}"));
        let exec_root = PathBuf::from(format!(
            "/tmp/{EXEC_ROOT_PREFIX}{}-{name}-{cgroup}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&exec_root);
        std::fs::create_dir_all(&exec_root).unwrap();
        let d = Dockerd {
            fixture: fixture_name.into(),
            cgroup,
            daemon_json: work.join("daemon.json"),
            toolkit_config: work.join("amd-container-toolkit.toml"),
            hook_log: work.join("hook.log"),
            socket: exec_root.join("docker.sock"),
            exec_root,
            work,
            strict_nodes: false,
            child: None,
            starts: 0,
            host_before: existing(DOCKER_HOST_PATHS),
        };
        std::fs::write(&d.daemon_json, daemon_json).unwrap();
        std::fs::create_dir_all(d.work.join("client")).unwrap();
        std::fs::create_dir_all(d.work.join("home")).unwrap();
        d
    }

    fn log_path(&self, n: usize) -> PathBuf {
        self.work.join(format!("dockerd-{n}.log"))
    }

    /// The current daemon's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.starts)).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts dockerd and waits until it answers (at most 60 s).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "dockerd already started");
        self.starts += 1;
        let n = self.starts;
        // A fresh overlay upper dir per start: an upper dir still used by the
        // previous (dying) namespace's mount would be refused.
        let script = r#"
            mkdir -p "$W/etc-$N/up" "$W/etc-$N/work"
            mount -t overlay overlay -o "lowerdir=/etc,upperdir=$W/etc-$N/up,workdir=$W/etc-$N/work" /etc
            mount -t tmpfs -o mode=755 dockerd-run /run
            exec dockerd --config-file "$DAEMON_JSON" --data-root "$W/data" --exec-root "$X" \
                --pidfile "$W/docker.pid" -H "unix://$SOCK" --iptables=false --bridge=none
        "#;
        let log = File::create(self.log_path(n)).unwrap();
        let mut command = fakehw_command(
            &self.fixture,
            &self.cgroup.to_string(),
            &self.work.join("fakehw"),
            self.strict_nodes,
        );
        if self.strict_nodes {
            command.env("SYSTEMD_DEVICE_VERIFY_SYSFS", "0");
        }
        let child = command
            // If the test process dies without dropping us (killed by a
            // timeout), dockerd gets SIGTERM and stops its containerd.
            .args(["setpriv", "--pdeathsig", "TERM"])
            .args(["bash", "-euo", "pipefail", "-c", script])
            .env("W", &self.work)
            .env("N", n.to_string())
            .env("X", &self.exec_root)
            .env("SOCK", &self.socket)
            .env("DAEMON_JSON", &self.daemon_json)
            .env("AMD_CTK_CONFIG", &self.toolkit_config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run-in-fakehw.sh runs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!("dockerd exited at start ({status}):\n{}", self.log());
            }
            if self.socket.exists() && self.docker(&["version"]).status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops dockerd (SIGTERM, after 30 s SIGKILL) and waits for it; then
    /// makes sure the containerd it started is gone too.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                eprintln!("dockerd {} ignored SIGTERM: SIGKILL", child.id());
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // dockerd stops its containerd on a clean shutdown; after a SIGKILL
        // it would be left running.
        let pidfile = self.exec_root.join("containerd/containerd.pid");
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            if is_process(pid, "containerd") {
                signal(pid, "KILL");
            }
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    /// SIGHUP: dockerd reloads daemon.json (runtimes, default-runtime).
    pub fn reload(&self) {
        signal(self.pid().expect("dockerd runs"), "HUP");
    }

    /// A `docker` client command talking to this daemon only, with its own
    /// config directory (nothing read from or written to ~/.docker).
    pub fn client(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", self.work.join("client"))
            .env("HOME", self.work.join("home"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .stdin(Stdio::null());
        c
    }

    /// Runs `docker ARGS` against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.client()
            .args(args)
            .output()
            .expect("the docker client runs")
    }

    /// `docker ARGS` that must succeed; its stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}):\n--- stdout\n{}--- stderr\n{}--- dockerd log\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr),
            self.log()
        );
        text(&out.stdout)
    }

    /// `docker info` as JSON.
    pub fn info(&self) -> Value {
        serde_json::from_str(&self.docker_ok(&["info", "--format", "{{json .}}"])).unwrap()
    }

    /// The names of the runtimes dockerd knows and its default runtime.
    pub fn runtimes(&self) -> (Vec<String>, String) {
        let info = self.info();
        let names = info["Runtimes"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        (
            names,
            info["DefaultRuntime"].as_str().unwrap_or("").to_string(),
        )
    }

    /// Polls `docker info` until `cond(runtimes, default)` holds (at most 20 s).
    pub fn wait_for_runtimes(&self, what: &str, cond: impl Fn(&[String], &str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (names, default) = self.runtimes();
            if cond(&names, &default) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: runtimes {names:?}, default {default:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Imports the busybox rootfs of tests/fakehw/make-bundle.sh as `bb:test`.
    pub fn import_busybox(&self) {
        let bundle = self.work.join("bundle");
        let out = Command::new(repo().join("tests/fakehw/make-bundle.sh"))
            .arg(&bundle)
            .output()
            .expect("make-bundle.sh runs");
        assert!(
            out.status.success(),
            "make-bundle.sh: {}",
            text(&out.stderr)
        );
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(bundle.join("rootfs"))
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("tar runs");
        let out = self
            .client()
            .args(["import", "-", "bb:test"])
            .stdin(tar.stdout.take().unwrap())
            .output()
            .expect("docker import runs");
        let tar_status = tar.wait().unwrap();
        assert!(
            tar_status.success(),
            "tar of the busybox rootfs: {tar_status}"
        );
        assert!(
            out.status.success(),
            "docker import: {}{}",
            text(&out.stderr),
            self.log()
        );
    }

    /// `docker run --rm --network none EXTRA… bb:test` running the probe.
    pub fn run_probe(&self, extra: &[&str]) -> Output {
        let cmd = probe_args(&probe_targets());
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(extra);
        args.push("bb:test");
        args.extend(cmd.iter().map(String::as_str));
        self.docker(&args)
    }

    /// [`Dockerd::run_probe`] that must succeed: the container's stdout.
    pub fn probe_ok(&self, extra: &[&str]) -> String {
        let out = self.run_probe(extra);
        assert!(
            out.status.success(),
            "docker run {extra:?} failed ({}):\n--- stdout\n{}--- stderr\n{}--- hook log\n{}--- dockerd log\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr),
            std::fs::read_to_string(&self.hook_log).unwrap_or_default(),
            self.log()
        );
        text(&out.stdout)
    }

    /// [`DOCKER_HOST_PATHS`] that appeared on the host since this daemon
    /// was prepared.
    pub fn new_host_paths(&self) -> Vec<String> {
        existing(DOCKER_HOST_PATHS)
            .into_iter()
            .filter(|p| !self.host_before.contains(p))
            .collect()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.exec_root);
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.work.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.work);
        }
    }
}

const EXEC_ROOT_PREFIX: &str = "amdctk-dockerd-";

/// Exec roots left in /tmp by test processes that were killed (no Drop ran;
/// their dockerd got SIGTERM through its parent-death signal).
fn remove_stale_exec_roots() {
    let Ok(dir) = std::fs::read_dir("/tmp") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(EXEC_ROOT_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Whether `pid` is a live process whose command name is `comm`.
fn is_process(pid: u32, comm: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == comm)
}

/// The built hook and runtime entry, for the configuration.
pub fn hook_bin() -> PathBuf {
    bin("amd-container-hook")
}

pub fn runtime_bin() -> PathBuf {
    bin("amd-container-runtime")
}
