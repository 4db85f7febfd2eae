//! The systemd + cgroup v2 host, proven in two VMs: Debian 13 (`trixie`:
//! systemd 257, runc 1.1, crun 1.21, Podman 5.4, Docker 26, containerd 1.7)
//! and Debian sid (`sid`: the newest engines a user installs — Podman 5.8,
//! crun 1.28, runc 1.3, Docker 28.5, containerd 2.1), each booted under qemu
//! by `tests/vm/run-vm.sh` with the project's release binaries and the
//! mi300x-8 fixture's fake hardware. `tests/vm/suite.sh` runs inside each and
//! reports one `RESULT` line per test; this test requires each expected test
//! to be reported with a verdict its image allows, and fails with the VM's
//! output otherwise. The two images are two tests, so cargo runs them side
//! by side (each VM has its own overlay, payload and results).
//!
//! Needs root, debootstrap, qemu and umockdev (tests/install-deps.sh). Each
//! image's root filesystem is built once (a few minutes, network) and cached
//! under target/vm; the boot and the suite take a few minutes under TCG.
//! `AMD_CTK_VM_TESTS=0` skips them outside CI.

use amd_ctk_e2e::*;
use std::collections::BTreeMap;
use std::process::Command;

/// The test VM images (tests/vm/packages-IMAGE.txt).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Image {
    Trixie,
    Sid,
}

impl Image {
    fn name(self) -> &'static str {
        match self {
            Image::Trixie => "trixie",
            Image::Sid => "sid",
        }
    }
}

const PASS: &[&str] = &["PASS"];

/// Every test the suite must report, and the verdicts each may have on
/// trixie and on sid.
/// `host-control-*` are controls without our hook: HOST-BROKEN means the
/// host itself loses /dev/null on a reload and nothing about us can be
/// concluded, which fails this test too, with that message.
/// `podman-update-control` checks whether `podman update` keeps a device
/// Podman itself gave (`--device`); where it does not (ENGINE-LIMIT),
/// the suite does not hold our GPUs to more than Podman's own devices.
/// `docker-gpus-*`: Docker's AMD `--gpus` driver exists from 28.3 on; the
/// trixie's Docker 26 answers with its own "could not select device driver"
/// (ENGINE-LIMIT, and only that error).
const EXPECTED: &[(&str, &[&str], &[&str])] = &[
    ("host-control-runc", PASS, PASS),
    ("host-control-crun", PASS, PASS),
    ("runc-systemd", PASS, PASS),
    ("crun-systemd", PASS, PASS),
    ("runc-systemd-no-request", PASS, PASS),
    ("crun-systemd-no-request", PASS, PASS),
    ("runc-systemd-denied-above", PASS, PASS),
    ("crun-systemd-denied-above", PASS, PASS),
    ("podman-setup", PASS, PASS),
    (
        "podman-update-control",
        &["PASS", "ENGINE-LIMIT"],
        &["PASS", "ENGINE-LIMIT"],
    ),
    ("podman-prestart", PASS, PASS),
    ("podman-precreate", PASS, PASS),
    ("podman-cdi", PASS, PASS),
    ("podman-no-request", PASS, PASS),
    ("podman-cdi-nonroot", PASS, PASS),
    ("rootless-setup", PASS, PASS),
    ("rootless-cdi", PASS, PASS),
    ("rootless-hook", PASS, PASS),
    ("docker-setup", PASS, PASS),
    ("docker-systemd", PASS, PASS),
    ("docker-no-request", PASS, PASS),
    ("docker-cdi", PASS, PASS),
    ("docker-cdi-names", PASS, PASS),
    ("docker-gpus-runtime", &["ENGINE-LIMIT"], PASS),
    ("docker-gpus-default", &["ENGINE-LIMIT"], PASS),
    ("cri-setup", PASS, PASS),
    ("cri-cdi-devices", PASS, PASS),
    ("cri-cdi-annotation", PASS, PASS),
    ("cri-runtime-class", PASS, PASS),
    ("cri-no-request", PASS, PASS),
    ("cdi-refresh-udev", PASS, PASS),
];

fn expected(image: Image) -> impl Iterator<Item = (&'static str, &'static [&'static str])> {
    EXPECTED.iter().map(move |(name, trixie, sid)| {
        (
            *name,
            match image {
                Image::Trixie => *trixie,
                Image::Sid => *sid,
            },
        )
    })
}

fn prerequisites() -> bool {
    if !in_ci() && std::env::var("AMD_CTK_VM_TESTS").is_ok_and(|v| v == "0") {
        eprintln!("SKIPPED: AMD_CTK_VM_TESTS=0");
        return false;
    }
    require(is_root(), "root (debootstrap, qemu with 9p shares)")
        && require(
            have("qemu-system-x86_64") && have("debootstrap") && have("umockdev-run"),
            "qemu-system-x86_64, debootstrap and umockdev-run (tests/install-deps.sh)",
        )
}

/// `RESULT name VERDICT (Ns)` lines → name → verdict.
fn results(log: &str) -> BTreeMap<String, String> {
    log.lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect()
}

#[test]
fn systemd_cgroup_v2_host_in_a_vm_debian13() {
    vm_suite(Image::Trixie);
}

#[test]
fn systemd_cgroup_v2_host_in_a_vm_debian_sid() {
    vm_suite(Image::Sid);
}

fn vm_suite(image: Image) {
    if !prerequisites() {
        return;
    }
    let work = scratch(&format!("vm-systemd-{}", image.name()));
    let payload = work.join("payload");
    let out_dir = work.join("results");
    let bin_dir = bin("amd-container-hook").parent().unwrap().to_path_buf();
    let st = Command::new("bash")
        .arg(repo().join("tests/vm/make-payload.sh"))
        .arg(&payload)
        .env("AMD_CTK_BIN_DIR", &bin_dir)
        .status()
        .expect("make-payload.sh runs");
    assert!(st.success(), "tests/vm/make-payload.sh failed");
    let boot = || {
        Command::new("bash")
            .arg(repo().join("tests/vm/run-vm.sh"))
            .arg(&payload)
            .arg(&out_dir)
            .arg(image.name())
            .output()
            .expect("run-vm.sh runs")
    };
    let mut run = boot();
    // 75: the guest kernel crashed (an emulation fault under TCG, run-vm.sh),
    // which says nothing about the suite: boot again, say so. Twice in a row
    // has been seen (sid's kernel, 2 vCPUs), so up to three boots in all.
    for _ in 0..2 {
        if run.status.code() != Some(75) {
            break;
        }
        eprintln!(
            "the VM's kernel crashed; booting it again:\n{}",
            text(&run.stderr)
        );
        run = boot();
    }
    let log = std::fs::read_to_string(out_dir.join("suite.log")).unwrap_or_default();
    assert!(
        run.status.success(),
        "the VM did not run the suite to its end:\n{}\n--- suite output so far\n{log}",
        text(&run.stderr)
    );
    eprintln!("{}", text(&run.stderr));
    let got = results(&log);
    let mut failures = Vec::new();
    for (name, allowed) in expected(image) {
        match got.get(name) {
            None => failures.push(format!("{name}: not reported")),
            Some(v) if allowed.contains(&v.as_str()) => {}
            Some(v) if v == "HOST-BROKEN" => failures.push(format!(
                "{name}: HOST-BROKEN: a container without our hook fails on this VM's host; \
                 the host is at fault, nothing about the toolkit can be concluded"
            )),
            Some(v) => failures.push(format!("{name}: {v}")),
        }
    }
    for name in got.keys() {
        if !EXPECTED.iter().any(|(n, _, _)| n == name) {
            failures.push(format!(
                "{name}: reported but not expected by tests/vm_systemd.rs"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "VM suite failures ({}):\n  {}\n--- VM suite output (tests/vm/suite.sh)\n{log}",
        image.name(),
        failures.join("\n  ")
    );
    // Shown with --nocapture: what each engine did, for the record.
    let summary: Vec<_> = got.iter().map(|(n, v)| format!("{n} {v}")).collect();
    eprintln!("VM suite ({}): {}", image.name(), summary.join(", "));
    let _ = std::fs::remove_dir_all(&work);
}
