//! What a container sees of the GPU nodes, and how the tests judge it.
//!
//! [`PROBE`] runs in the container (a runc bundle's process, an engine's
//! busybox image) and prints the nodes it finds and what opening each path
//! gives; [`Probe::parse`] reads that back. The oracle (CONTRIBUTING.md,
//! "Tests"): a node the device cgroup allows opens to the absent driver
//! ([`crate::ENXIO`]), a denied one gives [`crate::EPERM`], an absent one
//! [`crate::ENOENT`]; [`fakehw_node`] is the host's node as the fake
//! hardware makes it. The engine tests judge mi300x-8 with
//! [`assert_gpu0_only`] / [`assert_no_gpu`].

use crate::{ENOENT, ENXIO};
use std::collections::BTreeMap;
use std::path::Path;

/// A shell script for the container: one `node PATH MAJ:MIN MODE GID` line
/// (major/minor in hex, mode in octal, as busybox `stat` prints them) for
/// `/dev/kfd` and each entry of `/dev/dri`, then one `open PATH RESULT` line
/// per argument, RESULT being `ok` or the error text of opening it (`No such
/// device or address`, `Operation not permitted`, `No such file or
/// directory`). Ends with `probe done`.
pub const PROBE: &str = r#"
for f in /dev/kfd /dev/dri/*; do
    [ -e "$f" ] || continue
    echo "node $(stat -c '%n %t:%T %a %g' "$f")"
done
for f in "$@"; do
    if out=$(cat "$f" 2>&1 >/dev/null); then echo "open $f ok"; else echo "open $f ${out##*: }"; fi
done
echo "probe done"
"#;

pub fn probe_args(extra: &[&str]) -> Vec<String> {
    let mut args = vec!["sh".to_string(), "-c".into(), PROBE.into(), "probe".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A device node as the container sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenNode {
    pub major: u32,
    pub minor: u32,
    pub mode: u32,
    pub gid: u32,
}

/// The parsed output of [`PROBE`].
#[derive(Debug, Default)]
pub struct Probe {
    /// `/dev/kfd` and `/dev/dri/*` by path.
    pub nodes: BTreeMap<String, SeenNode>,
    /// Result of opening each extra path.
    pub opens: BTreeMap<String, String>,
}

impl Probe {
    /// Parses the container's stdout; panics (with it) unless the probe ran
    /// to its end.
    pub fn parse(stdout: &str) -> Probe {
        assert!(
            stdout.lines().any(|l| l == "probe done"),
            "the container's probe did not run to its end:\n{stdout}"
        );
        let mut p = Probe::default();
        for line in stdout.lines() {
            if let Some(rest) = line.strip_prefix("node ") {
                let f: Vec<&str> = rest.split_whitespace().collect();
                assert_eq!(f.len(), 4, "bad probe line {line:?}");
                let (ma, mi) = f[1].split_once(':').unwrap();
                let node = SeenNode {
                    major: u32::from_str_radix(ma, 16).unwrap(),
                    minor: u32::from_str_radix(mi, 16).unwrap(),
                    mode: u32::from_str_radix(f[2], 8).unwrap(),
                    gid: f[3].parse().unwrap(),
                };
                p.nodes.insert(f[0].to_string(), node);
            } else if let Some(rest) = line.strip_prefix("open ") {
                let (path, result) = rest.split_once(' ').unwrap();
                p.opens.insert(path.to_string(), result.to_string());
            }
        }
        p
    }

    /// The node paths, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    pub fn open(&self, path: &str) -> &str {
        self.opens
            .get(path)
            .map(String::as_str)
            .unwrap_or("(not probed)")
    }
}

/// Device nodes of the fake hardware as `run-in-fakehw.sh` makes them.
pub fn fakehw_node(path: &str) -> SeenNode {
    let name = Path::new(path).file_name().unwrap().to_str().unwrap();
    if let Some(n) = name.strip_prefix("renderD") {
        SeenNode {
            major: 226,
            minor: n.parse().unwrap(),
            mode: 0o666,
            gid: 109,
        }
    } else if let Some(n) = name.strip_prefix("card") {
        SeenNode {
            major: 226,
            minor: n.parse().unwrap(),
            mode: 0o660,
            gid: 44,
        }
    } else if name == "kfd" {
        SeenNode {
            major: 238,
            minor: 0,
            mode: 0o666,
            gid: 109,
        }
    } else {
        panic!("not a fake GPU node: {path}")
    }
}

/// mi300x-8: GPU 0's nodes (plus the shared /dev/kfd).
pub const GPU0_NODES: [&str; 3] = ["/dev/dri/card1", "/dev/dri/renderD128", "/dev/kfd"];
/// mi300x-8: GPU 1's nodes.
pub const GPU1_NODES: [&str; 2] = ["/dev/dri/card5", "/dev/dri/renderD132"];

/// The paths the container probes (opens): GPU 0's and GPU 1's nodes and
/// /dev/dri itself.
pub fn probe_targets() -> Vec<&'static str> {
    GPU0_NODES
        .iter()
        .chain(GPU1_NODES.iter())
        .copied()
        .chain(["/dev/dri"])
        .collect()
}

/// Writes [`PROBE`] to `work/probe.sh` and the probe targets to
/// `work/probe-targets` (one a line), for scripts: `sh -c "$(cat
/// "$W/probe.sh")" probe $(cat "$W/probe-targets")`.
pub fn write_probe(work: &Path) {
    std::fs::write(work.join("probe.sh"), PROBE).unwrap();
    std::fs::write(
        work.join("probe-targets"),
        probe_targets().join("\n") + "\n",
    )
    .unwrap();
}

/// Asserts the container saw exactly GPU 0's card and render nodes and
/// /dev/kfd, with the host's major:minor, mode and gid, each allowed by the
/// device cgroup (opening reaches the absent driver: ENXIO), and none of GPU
/// 1's nodes. `out` is what the container printed; `what` names the case.
pub fn assert_gpu0_only(out: &str, what: &str) {
    let probe = Probe::parse(out);
    let mut want: Vec<String> = GPU0_NODES.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(probe.paths(), want, "{what}: node set:\n{out}");
    for (path, seen) in &probe.nodes {
        assert_eq!(
            seen,
            &fakehw_node(path),
            "{what}: {path}: major:minor/mode/gid differ from the host's node:\n{out}"
        );
    }
    for path in GPU0_NODES {
        assert_eq!(
            probe.open(path),
            ENXIO,
            "{what}: {path} must be present and allowed by the device cgroup:\n{out}"
        );
    }
    for path in GPU1_NODES {
        assert_eq!(
            probe.open(path),
            ENOENT,
            "{what}: GPU 1's {path} must be absent:\n{out}"
        );
    }
}

/// Asserts the container has no GPU node at all: no /dev/kfd, no /dev/dri.
pub fn assert_no_gpu(out: &str, what: &str) {
    let probe = Probe::parse(out);
    assert!(
        probe.nodes.is_empty(),
        "{what}: no GPU node may appear:\n{out}"
    );
    for path in probe_targets() {
        assert_eq!(
            probe.open(path),
            ENOENT,
            "{what}: {path} must be absent:\n{out}"
        );
    }
}
