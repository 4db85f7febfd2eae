//! The container's device cgroup: where it is (from `/proc/<pid>/cgroup` and
//! mountinfo) and how to allow more devices in it (v1 `devices.allow`, v2 a
//! replaced BPF program, and on systemd hosts the container's scope unit).
//!
//! cgroup v2 contract ([`DeviceCgroup::allow`]): an access is allowed only
//! when every device program on the container's cgroup *and on each
//! ancestor* allows it. The grant is made at every level that belongs to
//! this container — its own cgroup and, under the systemd cgroup driver, the
//! levels up to and including its own scope (systemd's program there is
//! changed through systemd, see [`crate::systemd`], so that it holds when
//! systemd re-applies the unit's properties; a device program systemd
//! attaches from a bpffs pin, `BPFProgram=device:PIN`, is pinned anew there,
//! see [`pin`]). Levels above (slices, pods)
//! are shared with other containers and never changed. Afterwards every
//! level up to the root is judged — the container's own levels by the
//! programs the grant just examined or attached there (no syscall), every
//! level above by the programs the kernel reports; a program that still
//! denies a device fails the grant (all undone) with a message naming the
//! cgroup, the program and what works instead, so a container never starts
//! believing it has a GPU it cannot open. The cgroup is looked up where
//! hosts mount the hierarchy (`/sys/fs/cgroup`, v1 `…/devices`) when that
//! directory lists the container's pid, else through mountinfo.

mod mountinfo;
mod pin;
mod v1;
pub mod v2;

pub use v2::DeviceAccess;

use crate::systemd::{Scope, SystemdError};
use amd_container_common::DeviceNode;
use oci_spec::runtime::LinuxDeviceCgroup;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};

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

/// An opened device cgroup, ready to allow devices in (works from any mount
/// namespace once opened).
pub enum DeviceCgroup {
    V1(v1::DevicesDir),
    /// Boxed: the v2 state (levels, scope, pins) is several times v1's.
    V2(Box<V2Cgroup>),
}

/// A cgroup v2 container cgroup: its directory and every ancestor's up to
/// the hierarchy's root (innermost first), and its systemd scope if it has
/// one of its own.
pub struct V2Cgroup {
    levels: Vec<(PathBuf, File)>,
    scope: Option<Scope>,
    /// The pins of the scope's `BPFProgram=device:…` programs.
    pins: Vec<pin::DevicePin>,
}

/// Is the host's cgroup hierarchy unified (v2 only)? Decided the way runc
/// decides it: by the filesystem type at /sys/fs/cgroup.
fn unified() -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    statfs(UNIFIED_ROOT).is_ok_and(|st| st.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// Where hosts mount the cgroup v2 hierarchy, and v1's devices controller.
const UNIFIED_ROOT: &str = "/sys/fs/cgroup";
const V1_DEVICES_ROOT: &str = "/sys/fs/cgroup/devices";

/// A small /proc or cgroupfs file, read whole with as few read(2) calls as
/// its size allows (`fs::read_to_string` starts at 32 bytes for files that
/// report size 0, as these do).
fn read_small(path: &Path) -> io::Result<String> {
    let mut text = String::with_capacity(4096);
    File::open(path)?.read_to_string(&mut text)?;
    Ok(text)
}

/// `root/rel` when that directory is the cgroup `pid` is in: it lists the
/// pid in `cgroup.procs` (a process is in exactly one cgroup per
/// hierarchy). This spares reading mountinfo, whose size grows with every
/// mount on the host, on hosts that mount cgroups where everybody does.
fn conventional(root: &str, rel: &str, pid: i32) -> Option<PathBuf> {
    let rel = Path::new(rel);
    if !rel
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
    {
        return None;
    }
    let dir = Path::new(root).join(rel.strip_prefix("/").unwrap_or(rel));
    let procs = read_small(&dir.join("cgroup.procs")).ok()?;
    let pid = pid.to_string();
    procs.lines().any(|l| l == pid).then_some(dir)
}

impl DeviceCgroup {
    /// Finds and opens the device cgroup of process `pid`.
    pub fn open(pid: i32) -> Result<DeviceCgroup, CgroupError> {
        let cgroup_file = PathBuf::from(format!("/proc/{pid}/cgroup"));
        let membership = read_small(&cgroup_file).map_err(|source| CgroupError::Read {
            path: cgroup_file.clone(),
            source,
        })?;
        let mounts_path = PathBuf::from("/proc/self/mountinfo");
        let resolve = |rel: &str, wanted: &dyn Fn(&mountinfo::Mount) -> bool| {
            let mounts = read_small(&mounts_path).map_err(|source| CgroupError::Read {
                path: mounts_path.clone(),
                source,
            })?;
            Ok::<_, CgroupError>(mountinfo::resolve(&mountinfo::parse(&mounts), rel, wanted))
        };
        if unified() {
            let rel = membership
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .ok_or(CgroupError::NotFound {
                    what: "cgroup v2 membership",
                    path: cgroup_file.clone(),
                })?;
            if rel.trim_end_matches('/').is_empty() {
                return Err(CgroupError::RootCgroup {
                    what: "cgroup v2",
                    path: cgroup_file,
                });
            }
            let path = match conventional(UNIFIED_ROOT, rel, pid) {
                Some(p) => p,
                None => resolve(rel, &|m| m.fstype == "cgroup2")?.ok_or(CgroupError::NotFound {
                    what: "cgroup2 mount",
                    path: mounts_path.clone(),
                })?,
            };
            let mut levels = Vec::new();
            for dir in path.ancestors() {
                let file = File::open(dir).map_err(|source| CgroupError::Read {
                    path: dir.to_path_buf(),
                    source,
                })?;
                let is_cgroup2 = nix::sys::statfs::fstatfs(&file)
                    .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
                if !is_cgroup2 {
                    break; // past the hierarchy's mount point
                }
                levels.push((dir.to_path_buf(), file));
                if dir == Path::new(UNIFIED_ROOT) {
                    break; // the mount point itself: nothing above is cgroup2
                }
            }
            if levels.is_empty() {
                return Err(CgroupError::NotFound {
                    what: "cgroup2 directory",
                    path,
                });
            }
            let mut scope = Scope::find(pid, rel, &path)?;
            let mut pins = Vec::new();
            if let Some(scope) = scope.as_mut() {
                for p in scope.device_program_pins()? {
                    pins.extend(pin::DevicePin::open(&p)?);
                }
            }
            Ok(DeviceCgroup::V2(Box::new(V2Cgroup {
                levels,
                scope,
                pins,
            })))
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
                    path: cgroup_file.clone(),
                })?;
            if rel.trim_end_matches('/').is_empty() {
                return Err(CgroupError::RootCgroup {
                    what: "devices cgroup",
                    path: cgroup_file,
                });
            }
            // Only a devices hierarchy has the devices.allow DevicesDir opens.
            if let Some(dir) =
                conventional(V1_DEVICES_ROOT, rel, pid).and_then(|p| v1::DevicesDir::open(p).ok())
            {
                return Ok(DeviceCgroup::V1(dir));
            }
            let path = resolve(rel, &|m| {
                m.fstype == "cgroup" && m.super_options.split(',').any(|o| o == "devices")
            })?
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
        &mut self,
        nodes: &[DeviceNode],
        spec_rules: &[LinuxDeviceCgroup],
    ) -> Result<bool, CgroupError> {
        match self {
            DeviceCgroup::V1(dir) => Ok(dir.allow(nodes)?),
            DeviceCgroup::V2(cg) => cg.allow(nodes, spec_rules),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            DeviceCgroup::V1(d) => format!("cgroup v1 {}", d.path().display()),
            DeviceCgroup::V2(cg) => {
                let own = cg.levels.first().map(|(p, _)| p.display().to_string());
                match &cg.scope {
                    Some(s) => format!(
                        "cgroup v2 {}, systemd unit {}",
                        own.unwrap_or_default(),
                        s.unit
                    ),
                    None => format!("cgroup v2 {}", own.unwrap_or_default()),
                }
            }
        }
    }
}

/// How long systemd may take to rebuild a scope's device program after its
/// properties changed (it does so from its event loop, after replying).
const SYSTEMD_APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

impl V2Cgroup {
    fn allow(
        &mut self,
        nodes: &[DeviceNode],
        spec_rules: &[LinuxDeviceCgroup],
    ) -> Result<bool, CgroupError> {
        let access: Vec<DeviceAccess> = nodes
            .iter()
            .map(|n| DeviceAccess {
                major: n.major,
                minor: n.minor,
            })
            .collect();
        // 1. systemd's program on the container's scope, through systemd.
        let mut scope_change = None;
        if let Some(scope) = self.scope.as_mut() {
            let scope_dir = self.levels[scope.levels_up].1.as_fd();
            let before = v2::program_ids(scope_dir)?;
            let change = scope.allow(nodes)?;
            if !change.added.is_empty() {
                wait_for_new_program(scope_dir, &before);
            }
            scope_change = Some(change);
        }
        // 2. The other programs on the container's own levels.
        let top = self.scope.as_ref().map_or(0, |s| s.levels_up);
        let mut changes = Vec::new();
        let mut result = Ok(());
        for (_, dir) in &self.levels[..=top] {
            match v2::allow_devices(dir.as_fd(), &access, spec_rules) {
                Ok(c) => changes.push(c),
                Err(e) => {
                    result = Err(CgroupError::from(e));
                    break;
                }
            }
        }
        // 3. Every level up to the root must now allow the devices: the
        // container's own levels by the programs step 2 saw or attached
        // there, the levels above by asking the kernel.
        if result.is_ok() {
            result = self.judge(&access, top, &changes);
        }
        // 4. A program systemd attaches from a pin is replaced there too.
        let mut repinned = Vec::new();
        if result.is_ok() {
            if let Some(scope_level) = self.scope.as_ref().and_then(|s| changes.get(s.levels_up)) {
                for p in &self.pins {
                    let Some((new, new_id)) = scope_level.replacement_of(p.pinned_id) else {
                        continue;
                    };
                    match p.repin(new.as_fd(), new_id) {
                        Ok(r) => repinned.push(r),
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
            }
        }
        let changed = changes.iter().any(v2::V2Change::changed)
            || scope_change.as_ref().is_some_and(|c| !c.added.is_empty());
        match result {
            Ok(()) => Ok(changed),
            Err(e) => {
                for r in repinned.into_iter().rev() {
                    if let Err(undo) = r.undo() {
                        log::error!("undoing a device program pin: {undo}");
                    }
                }
                for c in changes.into_iter().rev() {
                    if let Err(undo) = c.revert() {
                        log::error!("undoing a device program replacement: {undo}");
                    }
                }
                if let (Some(scope), Some(change)) = (self.scope.as_mut(), scope_change) {
                    if let Err(undo) = scope.undo(change) {
                        log::error!("undoing DeviceAllow on {}: {undo}", scope.unit);
                    }
                }
                Err(e)
            }
        }
    }

    /// Judges every level; levels above `top` are not the container's own.
    /// `own[i]` is what step 2 left on level `i` (up to `top`).
    fn judge(
        &self,
        access: &[DeviceAccess],
        top: usize,
        own: &[v2::V2Change],
    ) -> Result<(), CgroupError> {
        for (i, (path, dir)) in self.levels.iter().enumerate() {
            let judgement = match own.get(i) {
                Some(change) if i <= top => v2::judge_programs(&change.attached, access),
                _ => v2::judge(dir.as_fd(), access)?,
            };
            match judgement {
                v2::Judgement::Allowed => {}
                v2::Judgement::Unknown { id, why } => log::warn!(
                    "cannot tell whether device program {id} on {} allows the GPU ({why})",
                    path.display()
                ),
                v2::Judgement::Denied { id, name, device } if i > top => {
                    return Err(CgroupError::DeniedAbove {
                        cgroup: path.clone(),
                        program: id,
                        name,
                        major: device.major,
                        minor: device.minor,
                    })
                }
                v2::Judgement::Denied { id, name, device } => {
                    return Err(CgroupError::StillDenied {
                        cgroup: path.clone(),
                        program: id,
                        name,
                        major: device.major,
                        minor: device.minor,
                    })
                }
            }
        }
        Ok(())
    }
}

/// Waits (bounded) until the set of programs on `dir` differs from `before`:
/// systemd has attached the program it built from the new properties.
fn wait_for_new_program(dir: std::os::fd::BorrowedFd, before: &[u32]) {
    let start = std::time::Instant::now();
    while start.elapsed() < SYSTEMD_APPLY_WAIT {
        match v2::program_ids(dir) {
            Ok(ids) if ids != before => return,
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
            Err(_) => return,
        }
    }
    log::warn!("systemd did not replace its device program within {SYSTEMD_APPLY_WAIT:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conventional_path_must_list_the_pid() {
        let root = std::env::temp_dir().join(format!("amd-cg-{}", std::process::id()));
        let dir = root.join("runc/ctr");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup.procs"), "12\n345\n").unwrap();
        let r = root.to_str().unwrap();
        assert_eq!(conventional(r, "/runc/ctr", 345), Some(dir.clone()));
        assert_eq!(conventional(r, "/runc/ctr", 34), None, "whole lines only");
        assert_eq!(conventional(r, "/runc/other", 345), None);
        assert_eq!(conventional(r, "/runc/ctr/../ctr", 345), None, "no ..");
        std::fs::remove_dir_all(root).unwrap();
    }
}
