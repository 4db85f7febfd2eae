//! The container's device cgroup: where it is (from `/proc/<pid>/cgroup` and
//! mountinfo, lookup.rs) and how to allow more devices in it (v1
//! `devices.allow`, v2 a replaced BPF program, and on systemd hosts the
//! container's scope unit), each a [`Backend`].
//!
//! Contract ([`DeviceCgroup::allow`]): all or nothing, and a second run
//! changes nothing; on cgroup v2 the grant holds only when every level up to
//! the root allows the devices, or it fails (all undone) naming the program
//! that still denies (see [`v2`]'s levels.rs for the whole contract). The
//! cgroup is looked up where hosts mount the hierarchy (`/sys/fs/cgroup`,
//! v1 `…/devices`) when that directory lists the container's pid, else
//! through mountinfo.

mod lookup;
mod mountinfo;
mod v1;
pub mod v2;

pub use v2::DeviceAccess;

use crate::systemd::{Scope, SystemdError};
use amd_container_common::DeviceNode;
use lookup::{Membership, UNIFIED, V1_DEVICES};
use oci_spec::runtime::LinuxDeviceCgroup;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot find the container's {what} in {path}")]
    NotFound { what: &'static str, path: PathBuf },
    #[error("cannot allow {rule} in {path}: {source}")]
    Allow {
        rule: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "refusing to change the root {what}: the process is in no container's cgroup \
         (from {path})"
    )]
    RootCgroup { what: &'static str, path: PathBuf },
    #[error("cgroup v2 device program: {0}")]
    Bpf(#[from] v2::BpfError),
    #[error(transparent)]
    Systemd(#[from] SystemdError),
    #[error(
        "cannot {what} the device program pin {path} (systemd attaches the program pinned \
         there to the container's scope; a grant it would undo at the next daemon-reload is \
         refused): {source}"
    )]
    Pin {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    #[error(
        "device program {program} ({name:?}) on {cgroup} denies char device {major}:{minor} to \
         this container, and that cgroup is not the container's own (a slice or pod shared with \
         other containers), so a hook cannot change it. Give the GPU through the container's \
         spec instead: CDI (e.g. --device amd.com/gpu=N) or Podman's precreate hook \
         (amd-ctk runtime configure --runtime podman --precreate)"
    )]
    DeniedAbove {
        cgroup: PathBuf,
        program: u32,
        name: String,
        major: u32,
        minor: u32,
    },
    #[error(
        "device program {program} ({name:?}) on the container's cgroup {cgroup} still denies \
         char device {major}:{minor} after the grant"
    )]
    StillDenied {
        cgroup: PathBuf,
        program: u32,
        name: String,
        major: u32,
        minor: u32,
    },
}

/// What the injector needs of a device cgroup, whichever the version and
/// whoever manages it: v1's devices directory, v2's levels, a systemd scope
/// around those.
pub trait Backend {
    /// Allows read, write and mknod of each node, all or nothing (v1 undoes a
    /// partial write; v2 replaces programs atomically). Already-allowed
    /// devices are left as they are, so a second run changes nothing.
    /// Returns whether anything changed.
    fn allow(
        &mut self,
        nodes: &[DeviceNode],
        spec_rules: &[LinuxDeviceCgroup],
    ) -> Result<bool, CgroupError>;

    /// For the hook's report: which cgroup (and unit) this is.
    fn describe(&self) -> String;
}

/// An opened device cgroup, ready to allow devices in (works from any mount
/// namespace once opened).
pub struct DeviceCgroup(Box<dyn Backend>);

impl DeviceCgroup {
    /// Finds and opens the device cgroup of process `pid`.
    pub fn open(pid: i32) -> Result<DeviceCgroup, CgroupError> {
        let membership = Membership::read(pid)?;
        if lookup::unified() {
            let rel = membership.rel(&UNIFIED)?;
            let path = match membership.conventional(&UNIFIED, rel) {
                Some(p) => p,
                None => membership.mounted(&UNIFIED, rel)?,
            };
            let cgroup = v2::V2Cgroup::open(path.clone(), Path::new(UNIFIED.root))?;
            Ok(DeviceCgroup(match Scope::find(pid, rel, &path)? {
                Some(scope) => Box::new(v2::Scoped::new(scope, cgroup)?),
                None => Box::new(cgroup),
            }))
        } else {
            let rel = membership.rel(&V1_DEVICES)?;
            // Only a devices hierarchy has the devices.allow DevicesDir opens.
            if let Some(dir) = membership
                .conventional(&V1_DEVICES, rel)
                .and_then(|p| v1::DevicesDir::open(p).ok())
            {
                return Ok(DeviceCgroup(Box::new(dir)));
            }
            let path = membership.mounted(&V1_DEVICES, rel)?;
            Ok(DeviceCgroup(Box::new(v1::DevicesDir::open(path)?)))
        }
    }

    /// [`Backend::allow`] on the cgroup found.
    pub fn allow(
        &mut self,
        nodes: &[DeviceNode],
        spec_rules: &[LinuxDeviceCgroup],
    ) -> Result<bool, CgroupError> {
        self.0.allow(nodes, spec_rules)
    }

    pub fn describe(&self) -> String {
        self.0.describe()
    }
}
