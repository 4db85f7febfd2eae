//! [`V2Cgroup`]: a container's cgroup v2 directory and every ancestor's up
//! to the hierarchy's root, and the grant over them.
//!
//! Contract ([`V2Cgroup`]'s [`Backend::allow`]): an access is allowed only
//! when every device program on the container's cgroup *and on each
//! ancestor* allows it. The grant is made at every level that belongs to
//! this container — its own cgroup and, under the systemd cgroup driver, the
//! levels up to and including its own scope (the scope's own part, through
//! systemd, is [`super::Scoped`]'s; a device program systemd attaches from a
//! bpffs pin, `BPFProgram=device:PIN`, is pinned anew there, see pin.rs).
//! Levels above (slices, pods) are shared with other containers and never
//! changed. Afterwards every level up to the root is judged — the
//! container's own levels by the programs the grant just examined or
//! attached there (no syscall), every level above by the programs the
//! kernel reports; a program that still denies a device fails the grant
//! (all undone) with a message naming the cgroup, the program and what
//! works instead, so a container never starts believing it has a GPU it
//! cannot open.

use super::judge::{judge, judge_programs, Judgement};
use super::pin::DevicePin;
use super::replace::{allow_devices_via, V2Change};
use super::sys::Kernel;
use super::DeviceAccess;
use crate::cgroup::{Backend, CgroupError};
use amd_container_common::DeviceNode;
use oci_spec::runtime::LinuxDeviceCgroup;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// A cgroup v2 container cgroup: its directory and every ancestor's up to
/// the hierarchy's root (innermost first).
pub struct V2Cgroup {
    levels: Vec<(PathBuf, File)>,
    /// The outermost level that is the container's own: 0, or its systemd
    /// scope's.
    top: usize,
    /// The pins of the scope's `BPFProgram=device:…` programs.
    pins: Vec<DevicePin>,
}

impl V2Cgroup {
    /// Opens `path` and its ancestors up to the mount point of the
    /// hierarchy mounted at or above it (`mount_root` at the most).
    pub fn open(path: PathBuf, mount_root: &Path) -> Result<V2Cgroup, CgroupError> {
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
            if dir == mount_root {
                break; // the mount point itself: nothing above is cgroup2
            }
        }
        if levels.is_empty() {
            return Err(CgroupError::NotFound {
                what: "cgroup2 directory",
                path,
            });
        }
        Ok(V2Cgroup {
            levels,
            top: 0,
            pins: Vec::new(),
        })
    }

    /// The levels up to `top` are the container's own (its systemd scope's
    /// and below); `pins` are the scope's pinned device programs.
    pub fn own_up_to(&mut self, top: usize, pins: Vec<DevicePin>) {
        self.top = top;
        self.pins = pins;
    }

    /// The directory of level `i` (0: the container's own cgroup).
    pub fn level(&self, i: usize) -> BorrowedFd<'_> {
        self.levels[i].1.as_fd()
    }

    /// Judges every level; levels above `top` are not the container's own.
    /// `own[i]` is what the grant left on level `i` (up to `top`).
    fn judge(&self, access: &[DeviceAccess], own: &[V2Change]) -> Result<(), CgroupError> {
        let top = self.top;
        for (i, (path, dir)) in self.levels.iter().enumerate() {
            let judgement = match own.get(i) {
                Some(change) if i <= top => judge_programs(&change.attached, access),
                _ => judge(dir.as_fd(), access)?,
            };
            match judgement {
                Judgement::Allowed => {}
                Judgement::Unknown { id, why } => log::warn!(
                    "cannot tell whether device program {id} on {} allows the GPU ({why})",
                    path.display()
                ),
                Judgement::Denied { id, name, device } if i > top => {
                    return Err(CgroupError::DeniedAbove {
                        cgroup: path.clone(),
                        program: id,
                        name,
                        major: device.major,
                        minor: device.minor,
                    })
                }
                Judgement::Denied { id, name, device } => {
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

impl Backend for V2Cgroup {
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
        // 1. The programs on the container's own levels, through one kernel
        // (what it turns out not to support is asked once).
        let kernel = Kernel::default();
        let mut changes = Vec::new();
        let mut result = Ok(());
        for (_, dir) in &self.levels[..=self.top] {
            match allow_devices_via(kernel.clone(), dir.as_fd(), &access, spec_rules, false) {
                Ok(c) => changes.push(c),
                Err(e) => {
                    result = Err(CgroupError::from(e));
                    break;
                }
            }
        }
        // 2. Every level up to the root must now allow the devices: the
        // container's own levels by the programs step 1 saw or attached
        // there, the levels above by asking the kernel.
        if result.is_ok() {
            result = self.judge(&access, &changes);
        }
        // 3. A program systemd attaches from a pin is replaced there too.
        let mut repinned = Vec::new();
        if result.is_ok() {
            if let Some(scope_level) = changes.get(self.top) {
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
        let changed = changes.iter().any(V2Change::changed);
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
                Err(e)
            }
        }
    }

    fn describe(&self) -> String {
        let own = self.levels.first().map(|(p, _)| p.display().to_string());
        format!("cgroup v2 {}", own.unwrap_or_default())
    }
}
