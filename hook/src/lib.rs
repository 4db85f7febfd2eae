//! The AMD container hook. Two binaries share this crate:
//!
//! - `amd-container-hook` (src/bin/amd-container-hook/), registered with the engines, runs at
//!   every container start: [`stages`] decides from the spec's environment
//!   alone whether there is anything to do and, for GPU containers, does it
//!   (discovery, resolution, injection or spec editing) in the same process.
//!   libudev is loaded only then ([`lazy_udev`]).
//! - `amd-container-runtime` (src/bin, a thin `main` over [`runtime_shim`]):
//!   the runc-compatible entry for Docker.
//!
//! Both binaries link this library, so both get [`lazy_udev`]'s definitions
//! of the libudev symbols exactly once, and neither lists libudev in its
//! DT_NEEDED (CI checks with `readelf -d`).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_code)]

pub mod bpf;
pub mod cgroup;
pub mod container;
pub mod container_spec;
pub mod inject;
pub mod lazy_udev;
pub mod logging;
pub mod rootfs;
pub mod runtime_shim;
pub mod stages;
#[allow(unsafe_code)]
pub mod sys;
pub mod systemd;
pub mod tracker_hold;

use std::path::PathBuf;

pub const USAGE: &str =
    "usage: amd-container-hook [--config FILE] [--cdi] prestart|createRuntime|precreate|poststop";
/// The Swarm variable must carry this prefix (Docker names generic resources
/// so); it lets the fast path decide without reading the config file.
pub const SWARM_PREFIX: &str = "DOCKER_RESOURCE_";

/// The OCI hook stage the hook was registered for, as named on its command
/// line (the names the runtimes' hook tables use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Prestart,
    CreateRuntime,
    Precreate,
    Poststop,
}

impl Stage {
    /// The stage of a command-line word, or `None` for any other word.
    pub fn parse(word: &str) -> Option<Stage> {
        match word {
            "prestart" => Some(Stage::Prestart),
            "createRuntime" => Some(Stage::CreateRuntime),
            "precreate" => Some(Stage::Precreate),
            "poststop" => Some(Stage::Poststop),
            _ => None,
        }
    }
}

/// Command line of `amd-container-hook`: `[--config FILE] [--cdi] STAGE`.
pub struct Args {
    pub config: PathBuf,
    /// `--cdi`: registered by a CDI spec of ours (`amd-ctk cdi generate`):
    /// the container's GPUs are those in its `linux.devices`, already given
    /// by the engine (the `--cdi` stages in [`stages`]).
    pub cdi: bool,
    /// `None` when the command line is malformed or names no stage (a usage
    /// error).
    pub stage: Option<Stage>,
}

impl Args {
    pub fn parse(mut args: impl Iterator<Item = String>) -> Args {
        let mut config = amd_container_common::config::Config::default_path();
        let mut stage = None;
        let mut cdi = false;
        while let Some(a) = args.next() {
            match a.as_str() {
                "--cdi" if stage.is_none() => cdi = true,
                "--config" => match args.next() {
                    Some(p) => config = PathBuf::from(p),
                    None => stage = Some(String::new()),
                },
                _ if stage.is_none() => stage = Some(a),
                _ => stage = Some(String::new()),
            }
        }
        Args {
            config,
            cdi,
            stage: stage.as_deref().and_then(Stage::parse),
        }
    }
}
