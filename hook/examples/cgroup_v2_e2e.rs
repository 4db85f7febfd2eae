//! Driver of hook/examples/cgroup_v2_e2e.sh (root, real runc, cgroup v2):
//!
//! - `prepare CONFIG NODES`: edits a `runc spec` config: no terminal,
//!   `sleep 3600`, NODES bind-mounted on /gpu.
//! - `check ID CONFIG`: proves `allow_devices` / `revert` / `is_allowed` on the
//!   running container ID through the in-container oracle (`cat NODE`:
//!   EPERM = the device cgroup denies, ENXIO = allowed, no driver here) and
//!   `bpftool cgroup show`, and times `allow_devices`.
//!
//! It calls the library's public API (`amd_container_hook::cgroup::v2`), the
//! same code the hook runs.

#![deny(unsafe_code)]

use amd_container_hook::cgroup::v2::{self, Access, BpfError, DeviceAccess};
use serde_json::{json, Value};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::process::{exit, Command, Output};
use std::time::{Duration, Instant};

/// Why the driver could not run a check (a failed check is not an error:
/// it is counted and reported).
#[derive(Debug, thiserror::Error)]
enum E2eError {
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{what} is not the JSON expected: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    #[error("{what}: {got}")]
    Unexpected { what: &'static str, got: String },
    #[error("{0}")]
    Bpf(#[from] BpfError),
    #[error("loading the bundle's config {path}: {source}")]
    Spec {
        path: String,
        source: oci_spec::OciSpecError,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> E2eError {
    let what = what.into();
    |source| E2eError::Io { what, source }
}

fn json_err(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> E2eError {
    let what = what.into();
    |source| E2eError::Json { what, source }
}

/// Runs `cmd args`, its output whatever its status.
fn run(cmd: &str, args: &[&str]) -> Result<Output, E2eError> {
    Command::new(cmd)
        .args(args)
        .output()
        .map_err(io_err(format!("running {cmd} {}", args.join(" "))))
}

const RENDER: &str = "/gpu/render"; // c 226:128
const OTHER: &str = "/gpu/other"; // c 226:129
const ADD: DeviceAccess = DeviceAccess {
    major: 226,
    minor: 128,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [_, "prepare", config, nodes] => prepare(config, nodes),
        [_, "check", id, config] => check(id, config),
        _ => {
            eprintln!("usage: cgroup_v2_e2e prepare CONFIG NODES | check ID CONFIG");
            exit(2)
        }
    };
    if let Err(e) = result {
        eprintln!("cgroup_v2_e2e: {e}");
        exit(1);
    }
}

fn prepare(config: &str, nodes: &str) -> Result<(), E2eError> {
    let text = std::fs::read_to_string(config).map_err(io_err(format!("reading {config}")))?;
    let mut c: Value = serde_json::from_str(&text).map_err(json_err(config))?;
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(["sleep", "3600"]);
    let mounts = c["mounts"]
        .as_array_mut()
        .ok_or_else(|| E2eError::Unexpected {
            what: "the config's mounts (not an array)",
            got: config.to_string(),
        })?;
    mounts
        .push(json!({"destination": "/gpu", "type": "bind", "source": nodes, "options": ["bind"]}));
    let text = serde_json::to_string_pretty(&c).map_err(json_err(config))?;
    std::fs::write(config, text).map_err(io_err(format!("writing {config}")))
}

#[derive(Debug, PartialEq)]
enum Oracle {
    Readable,
    Denied,   // EPERM: the device cgroup said no
    NoDevice, // ENXIO: allowed, no driver behind the node
    Other(String),
}

fn oracle(id: &str, path: &str) -> Oracle {
    let out = match run("runc", &["exec", id, "cat", path]) {
        Ok(out) => out,
        Err(e) => return Oracle::Other(e.to_string()),
    };
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Oracle::Readable
    } else if err.contains("Operation not permitted") {
        Oracle::Denied
    } else if err.contains("No such device or address") {
        Oracle::NoDevice
    } else {
        Oracle::Other(err.trim().to_string())
    }
}

struct Checker {
    failures: usize,
}

impl Checker {
    fn expect<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        if got == want {
            println!("ok    {what}: {got:?}");
        } else {
            println!("FAIL  {what}: got {got:?}, want {want:?}");
            self.failures += 1;
        }
    }
}

fn bpftool_show(cgroup: &str) -> Result<Vec<Value>, E2eError> {
    let out = run("bpftool", &["-j", "cgroup", "show", cgroup])?;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(json!([]));
    Ok(v.as_array().cloned().unwrap_or_default())
}

fn describe(progs: &[Value]) -> String {
    progs
        .iter()
        .map(|p| {
            format!(
                "id {} name {:?} flags {}",
                p["id"], p["name"], p["attach_flags"]
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn dump(id: &Value) -> Result<String, E2eError> {
    let out = run(
        "bpftool",
        &["prog", "dump", "xlated", "id", &id.to_string()],
    )?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn check(id: &str, config: &str) -> Result<(), E2eError> {
    let state = run("runc", &["state", id])?;
    let state: Value = serde_json::from_slice(&state.stdout).map_err(json_err("runc state"))?;
    let pid = state["pid"].as_i64().ok_or_else(|| E2eError::Unexpected {
        what: "runc state without a pid",
        got: state.to_string(),
    })?;
    let cgroup_file = format!("/proc/{pid}/cgroup");
    let membership =
        std::fs::read_to_string(&cgroup_file).map_err(io_err(format!("reading {cgroup_file}")))?;
    let rel = membership
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| E2eError::Unexpected {
            what: "no cgroup v2 membership (0::) in /proc/PID/cgroup",
            got: membership.clone(),
        })?;
    let cgroup = format!("/sys/fs/cgroup{rel}");
    println!("container {id}: pid {pid}, cgroup {cgroup}");
    let dir = File::open(&cgroup).map_err(io_err(format!("opening {cgroup}")))?;
    let fd = dir.as_fd();
    let spec = oci_spec::runtime::Spec::load(config).map_err(|source| E2eError::Spec {
        path: config.to_string(),
        source,
    })?;
    let rules = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    let mut c = Checker { failures: 0 };
    // With bpf_jit_harden=2 the kernel blinds constants in every program and
    // the dump shows the blinded code (with register AX): not loadable
    // again, so the first path is the rules one there too.
    let harden = std::fs::read_to_string("/proc/sys/net/core/bpf_jit_harden").unwrap_or_default();
    let first_name = if harden.trim() == "2" {
        println!("net.core.bpf_jit_harden = 2: expecting the rules path");
        "amd_gpu_rules"
    } else {
        "amd_gpu_allow"
    };

    let before = bpftool_show(&cgroup)?;
    println!("before: {}", describe(&before));
    if let Some(p) = before.first() {
        println!("runc's program, translated:\n{}", dump(&p["id"])?);
    }
    c.expect("programs attached before", before.len(), 1);
    c.expect("cat render before", oracle(id, RENDER), Oracle::Denied);
    c.expect(
        "cat /dev/null before",
        oracle(id, "/dev/null"),
        Oracle::Readable,
    );
    c.expect(
        "is_allowed(226:128) before",
        v2::is_allowed(fd, 226, 128, Access::RWM)?,
        false,
    );
    c.expect(
        "is_allowed(1:3) before",
        v2::is_allowed(fd, 1, 3, Access::RWM)?,
        true,
    );

    // 1. allow-prefix + runc's own instructions.
    let t = Instant::now();
    let change = v2::allow_devices(fd, &[ADD], &rules)?;
    let took = t.elapsed();
    println!(
        "allow_devices (query+read+load+attach): {} -> {change}",
        ms(took)
    );
    c.expect("changed()", change.changed(), true);
    let after = bpftool_show(&cgroup)?;
    println!("after: {}", describe(&after));
    if let Some(p) = after.first() {
        println!("new program, translated:\n{}", dump(&p["id"])?);
    }
    c.expect(
        "programs attached after (replaced, not added)",
        after.len(),
        1,
    );
    c.expect(
        "new program's name",
        after.first().map(|p| p["name"].clone()),
        Some(json!(first_name)),
    );
    c.expect("cat render after", oracle(id, RENDER), Oracle::NoDevice);
    c.expect(
        "cat /dev/null after",
        oracle(id, "/dev/null"),
        Oracle::Readable,
    );
    c.expect("cat 226:129 after", oracle(id, OTHER), Oracle::Denied);
    c.expect(
        "is_allowed(226:128) after",
        v2::is_allowed(fd, 226, 128, Access::RWM)?,
        true,
    );
    c.expect(
        "is_allowed(226:129, r) after",
        v2::is_allowed(fd, 226, 129, Access::READ)?,
        false,
    );

    let t = Instant::now();
    let again = v2::allow_devices(fd, &[ADD], &rules)?;
    println!("second allow_devices: {} -> {again}", ms(t.elapsed()));
    c.expect("second call changed()", again.changed(), false);
    c.expect(
        "programs after second call",
        bpftool_show(&cgroup)?.len(),
        1,
    );

    change.revert()?;
    let reverted = bpftool_show(&cgroup)?;
    println!("after revert: {}", describe(&reverted));
    c.expect(
        "revert restores runc's program",
        reverted.first().map(|p| p["id"].clone()),
        before.first().map(|p| p["id"].clone()),
    );
    c.expect(
        "cat render after revert",
        oracle(id, RENDER),
        Oracle::Denied,
    );
    c.expect(
        "cat /dev/null after revert",
        oracle(id, "/dev/null"),
        Oracle::Readable,
    );

    // 2. The rules path (as when the old instructions cannot be read).
    let t = Instant::now();
    let change = v2::allow_devices_with(fd, &[ADD], &rules, true)?;
    println!("allow_devices, rules path: {} -> {change}", ms(t.elapsed()));
    let after = bpftool_show(&cgroup)?;
    println!("after: {}", describe(&after));
    if let Some(p) = after.first() {
        println!("rules program, translated:\n{}", dump(&p["id"])?);
    }
    c.expect("rules path: programs attached", after.len(), 1);
    c.expect(
        "rules path: name",
        after.first().map(|p| p["name"].clone()),
        Some(json!("amd_gpu_rules")),
    );
    c.expect(
        "rules path: cat render",
        oracle(id, RENDER),
        Oracle::NoDevice,
    );
    c.expect(
        "rules path: cat /dev/null",
        oracle(id, "/dev/null"),
        Oracle::Readable,
    );
    c.expect("rules path: cat 226:129", oracle(id, OTHER), Oracle::Denied);
    let again = v2::allow_devices(fd, &[ADD], &rules)?;
    c.expect("rules path: second call changed()", again.changed(), false);
    change.revert()?;
    c.expect(
        "rules path: cat render after revert",
        oracle(id, RENDER),
        Oracle::Denied,
    );

    // 3. Without BPF_F_REPLACE (kernels before 5.6): attach, then detach.
    let change = v2::allow_devices_via(
        v2::WithoutReplace(v2::Kernel::default()),
        fd,
        &[ADD],
        &rules,
        false,
    )?;
    println!("allow_devices, attach + detach: {change}");
    let after = bpftool_show(&cgroup)?;
    println!("after: {}", describe(&after));
    c.expect("attach+detach: programs attached", after.len(), 1);
    c.expect(
        "attach+detach: cat render",
        oracle(id, RENDER),
        Oracle::NoDevice,
    );
    c.expect(
        "attach+detach: cat 226:129",
        oracle(id, OTHER),
        Oracle::Denied,
    );
    change.revert()?;
    let reverted = bpftool_show(&cgroup)?;
    c.expect(
        "attach+detach: revert restores runc's program",
        reverted.iter().map(|p| p["id"].clone()).collect::<Vec<_>>(),
        before.iter().map(|p| p["id"].clone()).collect::<Vec<_>>(),
    );
    c.expect(
        "attach+detach: cat render after revert",
        oracle(id, RENDER),
        Oracle::Denied,
    );

    // 4. Timing over repeated runs (each undone before the next).
    let mut times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let ch = v2::allow_devices(fd, &[ADD], &rules)?;
        times.push(t.elapsed());
        ch.revert()?;
    }
    times.sort();
    println!(
        "allow_devices over {} runs: min {}, median {}, max {}",
        times.len(),
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
    let mut noop = Vec::new();
    let ch = v2::allow_devices(fd, &[ADD], &rules)?;
    for _ in 0..50 {
        let t = Instant::now();
        let _ = v2::allow_devices(fd, &[ADD], &rules)?;
        noop.push(t.elapsed());
    }
    ch.revert()?;
    noop.sort();
    println!(
        "allow_devices when already allowed (query+read only): median {}",
        ms(noop[noop.len() / 2])
    );
    c.expect("final: programs attached", bpftool_show(&cgroup)?.len(), 1);
    c.expect("final: cat render", oracle(id, RENDER), Oracle::Denied);

    if c.failures > 0 {
        println!("{} check(s) FAILED", c.failures);
        exit(1);
    }
    println!("all checks passed");
    Ok(())
}
