//! Shared helpers of ctk's integration tests (`mod support;` in each): the
//! real `amd-ctk` binary run on files in a temporary directory of its own,
//! with a record of Docker's features.cdi that is never the host's.
//!
//! Each test crate uses a subset of these, hence `dead_code` is allowed here.
#![allow(dead_code)]

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const CTK: &str = env!("CARGO_BIN_EXE_amd-ctk");

/// The test crate's name (`config_safety`, `runtime_configure`, …): what
/// its scratch names start with, so that two crates never share one.
const CRATE: &str = env!("CARGO_CRATE_NAME");

/// A fresh directory under the target's temp dir, removed on drop (after
/// its immutable flags are cleared).
pub struct Dir(tempfile::TempDir);

impl Dir {
    pub fn new(name: &str) -> Dir {
        Dir(tempfile::Builder::new()
            .prefix(&format!("amd-ctk-{CRATE}-{name}-"))
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap())
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.0.path().join(rel)
    }

    pub fn s(&self, rel: &str) -> String {
        self.p(rel).display().to_string()
    }

    /// Every name in `rel`, hidden ones too, sorted; none when `rel` is
    /// missing.
    pub fn names(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.p(rel))
            .map(|r| {
                r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = Command::new("chattr")
            .arg("-R")
            .arg("-i")
            .arg(self.0.path())
            .output();
    }
}

/// The record of Docker's features.cdi this process's runs share (never the
/// host's /var/lib/amd-container-toolkit).
pub fn record() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("amd-ctk-{CRATE}-record-{}", std::process::id()))
        .join("docker-cdi.json")
}

/// amd-ctk with [`record`] as its record.
pub fn cmd() -> Command {
    let mut c = Command::new(CTK);
    c.env("AMD_CTK_DOCKER_CDI_STATE", record());
    c
}

pub fn ctk(args: &[&str]) -> Output {
    cmd().args(args).output().unwrap()
}

/// A run that must succeed: (stdout, stderr).
pub fn ok(args: &[&str]) -> (String, String) {
    let out = ctk(args);
    let (so, se) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(out.status.success(), "{args:?}: {se}");
    (so, se)
}

/// A run that must exit 1: its stderr.
pub fn fail(args: &[&str]) -> String {
    let out = ctk(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

pub fn json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}
