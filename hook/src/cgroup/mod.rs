//! The container's device cgroup: where it is (from `/proc/<pid>/cgroup` and
//! mountinfo) and how to allow more devices in it (v1 `devices.allow`, v2 a
//! replaced BPF program).

mod mountinfo;
mod v1;
mod v2;

pub use v2::DeviceAccess;

use amd_container_common::DeviceNode;
use oci_spec::runtime::LinuxDeviceCgroup;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;

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
    #[error("cgroup v2 device program: {0}")]
    Bpf(#[from] v2::BpfError),
}

/// An opened device cgroup, ready to allow devices in (works from any mount
/// namespace once opened).
pub enum DeviceCgroup {
    V1(v1::DevicesDir),
    V2 { dir: File, path: PathBuf },
}

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Is the host's cgroup hierarchy unified (v2 only)? Decided the way runc
/// decides it: by the filesystem type at /sys/fs/cgroup.
fn unified() -> bool {
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let path = c"/sys/fs/cgroup";
    unsafe { libc::statfs(path.as_ptr(), &mut st) == 0 && st.f_type as i64 == CGROUP2_SUPER_MAGIC }
}

impl DeviceCgroup {
    /// Finds and opens the device cgroup of process `pid`.
    pub fn open(pid: i32) -> Result<DeviceCgroup, CgroupError> {
        let cgroup_file = PathBuf::from(format!("/proc/{pid}/cgroup"));
        let membership =
            std::fs::read_to_string(&cgroup_file).map_err(|source| CgroupError::Read {
                path: cgroup_file.clone(),
                source,
            })?;
        let mounts_path = PathBuf::from("/proc/self/mountinfo");
        let mounts = std::fs::read_to_string(&mounts_path).map_err(|source| CgroupError::Read {
            path: mounts_path.clone(),
            source,
        })?;
        let mounts = mountinfo::parse(&mounts);
        if unified() {
            let rel = membership
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .ok_or(CgroupError::NotFound {
                    what: "cgroup v2 membership",
                    path: cgroup_file.clone(),
                })?;
            let path = mountinfo::resolve(&mounts, rel, |m| m.fstype == "cgroup2").ok_or(
                CgroupError::NotFound {
                    what: "cgroup2 mount",
                    path: mounts_path,
                },
            )?;
            let dir = File::open(&path).map_err(|source| CgroupError::Read {
                path: path.clone(),
                source,
            })?;
            Ok(DeviceCgroup::V2 { dir, path })
        } else {
            let rel = membership
                .lines()
                .find_map(|l| {
                    let mut f = l.splitn(3, ':');
                    let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
                    controllers
                        .split(',')
                        .any(|c| c == "devices")
                        .then_some(path)
                })
                .ok_or(CgroupError::NotFound {
                    what: "devices cgroup",
                    path: cgroup_file,
                })?;
            let path = mountinfo::resolve(&mounts, rel, |m| {
                m.fstype == "cgroup" && m.super_options.split(',').any(|o| o == "devices")
            })
            .ok_or(CgroupError::NotFound {
                what: "devices cgroup mount",
                path: mounts_path,
            })?;
            Ok(DeviceCgroup::V1(v1::DevicesDir::open(path)?))
        }
    }

    /// Allows read, write and mknod of each node, all or nothing (v1 undoes a
    /// partial write; v2 replaces programs atomically). Already-allowed devices
    /// are left as they are, so a second run changes nothing. Returns whether
    /// anything changed.
    pub fn allow(
        &self,
        nodes: &[DeviceNode],
        spec_rules: &[LinuxDeviceCgroup],
    ) -> Result<bool, CgroupError> {
        match self {
            DeviceCgroup::V1(dir) => Ok(dir.allow(nodes)?),
            DeviceCgroup::V2 { dir, .. } => {
                let access: Vec<DeviceAccess> = nodes
                    .iter()
                    .map(|n| DeviceAccess {
                        major: n.major,
                        minor: n.minor,
                    })
                    .collect();
                Ok(v2::allow_devices(dir.as_fd(), &access, spec_rules)?.changed())
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            DeviceCgroup::V1(d) => format!("cgroup v1 {}", d.path().display()),
            DeviceCgroup::V2 { path, .. } => format!("cgroup v2 {}", path.display()),
        }
    }
}
