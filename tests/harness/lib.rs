//! Shared helpers of the end-to-end tests: where the built binaries and the
//! fixtures are, running a binary under umockdev, the root/CI policy, and
//! reading a script's `== NAME` sections. Containers: [`runc`] (bundles under
//! real runc), [`engines`] (podman, dockerd), [`probe`] (what a container
//! sees of the GPU nodes, and the oracle); [`fuzzkit`] for the property tests.

pub mod engines;
pub mod fuzzkit;
pub mod probe;
pub mod runc;

/// Declares `mod $name { fn v1(); fn v2() }`: one test per cgroup version,
/// each running `$scenario(Cgroup::V1 | V2)` when the caller's `ready()`
/// (prerequisites, see [`require`]) says it can.
#[macro_export]
macro_rules! on_v1_and_v2 {
    ($(#[doc = $doc:literal])* $name:ident => $scenario:ident) => {
        $(#[doc = $doc])*
        mod $name {
            use super::*;
            #[test]
            fn v1() {
                if ready() {
                    $scenario(Cgroup::V1);
                }
            }
            #[test]
            fn v2() {
                if ready() {
                    $scenario(Cgroup::V2);
                }
            }
        }
    };
}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A binary of the workspace, built by `make build` (release) before the
/// tests run; `AMD_CTK_BIN_DIR` overrides the directory.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("AMD_CTK_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/release"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --release` (or `make build`) first",
        path.display()
    );
    path
}

pub fn fixture(name: &str) -> PathBuf {
    let p = repo()
        .join("tests/fixtures")
        .join(format!("{name}.umockdev"));
    assert!(p.is_file(), "no fixture {}", p.display());
    p
}

/// The fixtures built from real captures (tests/fixtures/captures/*/SOURCE.md).
pub const REAL_FIXTURES: &[&str] = &[
    "real-mi300x-cpx",
    "real-mi300x-cpx-dkms",
    "real-mi308x-cpx",
    "real-mi300x-dpx",
    "real-mi210-8",
    "real-mi210-8-bmc",
    "real-vega10",
];

/// The fixtures every golden test covers.
pub const FIXTURES: &[&str] = &[
    "radeon",
    "mi300x-8",
    "mi300x-cpx",
    "mi300x-cpx-dkms",
    "radeon-no-kfd",
    "no-amdgpu",
];

/// What `cat NODE` says in a container (CONTRIBUTING.md, "Tests"): allowed
/// by the device cgroup, there being no driver here.
pub const ENXIO: &str = "No such device or address";
/// Denied by the device cgroup.
pub const EPERM: &str = "Operation not permitted";
/// Denied by the file mode.
pub const EACCES: &str = "Permission denied";
/// No such node in the container.
pub const ENOENT: &str = "No such file or directory";

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether a test that needs `what` (root, a tool) can run. Outside CI it is
/// skipped with a note; in CI a missing prerequisite fails the test, so that
/// nothing passes by not running.
pub fn require(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    assert!(!in_ci(), "CI=true but this test cannot run: {what}");
    eprintln!("SKIPPED (not in CI): {what}");
    false
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the tests that run a binary under [`under_fixture`] can run.
pub fn umockdev_ready() -> bool {
    require(
        have("umockdev-run"),
        "umockdev-run (apt-get install umockdev)",
    )
}

/// Runs `program args` under `umockdev-run` with `fixture`'s fake hardware.
pub fn under_fixture(fixture_name: &str, program: &Path, args: &[&str]) -> Output {
    // What `cdi generate` records for `cdi refresh` stays in the repo's scratch, never in
    // the host's /var/lib.
    under_fixture_recording(fixture_name, program, args, &cdi_state_scratch())
}

/// [`under_fixture`] with what `cdi generate` records kept in `state`.
pub fn under_fixture_recording(
    fixture_name: &str,
    program: &Path,
    args: &[&str],
    state: &Path,
) -> Output {
    Command::new("umockdev-run")
        .arg("-d")
        .arg(fixture(fixture_name))
        .arg("--")
        .arg(program)
        .args(args)
        .env_remove("RUST_LOG")
        .env("AMD_CTK_CDI_STATE", state)
        .output()
        .expect("umockdev-run runs (apt-get install umockdev)")
}

/// Runs the built `amd-ctk args` under `fixture`'s fake hardware.
pub fn ctk_under(fixture_name: &str, args: &[&str]) -> Output {
    under_fixture(fixture_name, &bin("amd-ctk"), args)
}

/// The state file `cdi generate` records into, for this test process.
pub fn cdi_state_scratch() -> PathBuf {
    repo()
        .join("target/e2e-scratch")
        .join(format!("cdi-state-{}", std::process::id()))
        .join("cdi-specs.json")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Compares `actual` with the golden file `tests/golden/NAME`; with
/// `UPDATE_GOLDEN=1` rewrites it instead.
pub fn assert_golden(name: &str, actual: &str) {
    let path = repo().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {}: {e} (UPDATE_GOLDEN=1 writes it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "output differs from {}:\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// The lines of a script's output after its `== NAME` line, up to the next
/// `== ` line (panics, showing the output, when there is none).
pub fn section<'a>(all: &'a str, name: &str) -> &'a str {
    let start = all
        .find(&format!("== {name}\n"))
        .unwrap_or_else(|| panic!("no section {name}:\n{all}"));
    let rest = &all[start + name.len() + 4..];
    &rest[..rest.find("\n== ").map_or(rest.len(), |e| e + 1)]
}

/// Splits a script's stdout at `== NAME` lines: NAME → the lines after it.
pub fn sections(stdout: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            if let Some((n, body)) = current.take() {
                map.insert(n, body);
            }
            current = Some((name.trim().to_string(), String::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some((n, body)) = current {
        map.insert(n, body);
    }
    map
}

/// The row of GPU `index` in `amd-ctk gpu-tracker status`, and the holder
/// lines under it.
pub fn tracker_row(status: &str, index: usize) -> String {
    let mut lines = status
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{index:<10}")));
    let mut out: Vec<&str> = lines.next().into_iter().collect();
    out.extend(lines.take_while(|l| l.starts_with(' ')));
    out.join("\n")
}

/// A fresh scratch directory under the target dir.
pub fn scratch(name: &str) -> PathBuf {
    let d = repo()
        .join("target/e2e-scratch")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The `tests/fakehw/run-in-fakehw.sh … --` prefix: the fake hardware of
/// `fixture`, cgroup `cgroup` ("v1" or "v2"), its cache in `workdir`;
/// `strict_nodes`: kfd and render nodes 0660 root:109 instead of 0666. The
/// command to run in the namespace follows.
pub fn fakehw_command(
    fixture_name: &str,
    cgroup: &str,
    workdir: &Path,
    strict_nodes: bool,
) -> Command {
    let mut c = Command::new(repo().join("tests/fakehw/run-in-fakehw.sh"));
    c.arg("--fixture")
        .arg(fixture(fixture_name))
        .args(["--cgroup", cgroup, "--workdir"])
        .arg(workdir);
    if strict_nodes {
        c.arg("--strict-nodes");
    }
    c.arg("--");
    c
}

/// Runs a bash `script` inside the fake-hardware mount namespace
/// (tests/fakehw/run-in-fakehw.sh) for `fixture` and cgroup `cgroup` ("v1" or
/// "v2"). `W` in the script's environment is a scratch directory; `REPO` the
/// repository; `BIN` the directory of the built binaries.
pub fn fakehw_sh(fixture_name: &str, cgroup: &str, work: &Path, script: &str) -> Output {
    let bin_dir = bin("amd-ctk").parent().unwrap().to_path_buf();
    fakehw_command(fixture_name, cgroup, &work.join("fakehw"), false)
        .args(["bash", "-euo", "pipefail", "-c", script])
        .env("W", work)
        .env("REPO", repo())
        .env("BIN", bin_dir)
        .output()
        .expect("run-in-fakehw.sh runs")
}

/// A podman invocation prefix that keeps all state under `$W` and works on
/// this kind of host (runc, no systemd, hybrid cgroups): see tests/fakehw/README.md.
pub const PODMAN_SETUP: &str = r#"
mkdir -p "$W/podman"
cat > "$W/podman/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$W/podman/containers.conf"
# podman wants a runroot path of at most 50 characters.
PODMAN_RUNROOT=$(mktemp -d /tmp/podrun.XXXXXX)
# podman's cleanup process may still be writing there as the script ends: the
# removal retries once, and the script's own status is what it returns.
trap 'st=$?; rm -rf "$PODMAN_RUNROOT" 2>/dev/null || { sleep 1; rm -rf "$PODMAN_RUNROOT"; } || true; exit $st' EXIT
podman() { command podman --root "$W/podman/root" --runroot "$PODMAN_RUNROOT" --tmpdir "$W/podman/tmp" "$@"; }
bb_image() {
    "$REPO/tests/fakehw/make-bundle.sh" "$W/bundle" >/dev/null
    tar -C "$W/bundle/rootfs" -c . | podman import - localhost/bb:test >/dev/null
}
# A private /etc overlay, so /etc/cdi can be written without touching the host.
private_etc() {
    mkdir -p "$W/etc-up" "$W/etc-work"
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$W/etc-up,workdir=$W/etc-work" /etc
}
"#;
