//! Where a process's cgroup is, in one hierarchy (v2's, or v1's devices
//! controller): its line in `/proc/<pid>/cgroup`, and the directory that
//! path names on this host — where hosts mount the hierarchy
//! (`/sys/fs/cgroup`, v1 `…/devices`) when that directory lists the
//! process, else through mountinfo.
//!
//! Contract: reads only (`/proc/<pid>/cgroup`, `cgroup.procs`,
//! `/proc/self/mountinfo`, the last only when the conventional place does
//! not list the process). A process in the hierarchy's root cgroup is in no
//! container's cgroup and is refused; a membership path with anything but
//! plain names is never joined onto the conventional root.

use super::mountinfo::{self, Mount};
use super::CgroupError;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// One cgroup hierarchy: which membership line is its, where hosts mount
/// it, which mount is it, and its names in errors.
pub struct Hierarchy {
    /// Where hosts mount it.
    pub root: &'static str,
    /// The path of the membership line that is this hierarchy's.
    member: fn(&str) -> Option<&str>,
    /// Errors' names: the membership line, the hierarchy (at its root), its
    /// mount.
    membership: &'static str,
    root_name: &'static str,
    mount: &'static str,
    is_mount: fn(&Mount) -> bool,
}

/// The unified hierarchy (cgroup v2).
pub const UNIFIED: Hierarchy = Hierarchy {
    root: "/sys/fs/cgroup",
    member: |l| l.strip_prefix("0::"),
    membership: "cgroup v2 membership",
    root_name: "cgroup v2",
    mount: "cgroup2 mount",
    is_mount: |m| m.fstype == "cgroup2",
};

/// cgroup v1's devices controller.
pub const V1_DEVICES: Hierarchy = Hierarchy {
    root: "/sys/fs/cgroup/devices",
    member: |l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        controllers
            .split(',')
            .any(|c| c == "devices")
            .then_some(path)
    },
    membership: "devices cgroup",
    root_name: "devices cgroup",
    mount: "devices cgroup mount",
    is_mount: |m| m.fstype == "cgroup" && m.super_options.split(',').any(|o| o == "devices"),
};

/// Is the host's cgroup hierarchy unified (v2 only)? Decided the way runc
/// decides it: by the filesystem type at /sys/fs/cgroup.
pub fn unified() -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    statfs(UNIFIED.root).is_ok_and(|st| st.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// A process's `/proc/<pid>/cgroup`, read.
pub struct Membership {
    pid: i32,
    file: PathBuf,
    text: String,
}

const MOUNTINFO: &str = "/proc/self/mountinfo";

impl Membership {
    pub fn read(pid: i32) -> Result<Membership, CgroupError> {
        let file = PathBuf::from(format!("/proc/{pid}/cgroup"));
        let text = read_small(&file).map_err(|source| CgroupError::Read {
            path: file.clone(),
            source,
        })?;
        Ok(Membership { pid, file, text })
    }

    /// The process's cgroup path in `h` (relative to the hierarchy's root,
    /// with a leading `/`); refused at the root.
    pub fn rel(&self, h: &Hierarchy) -> Result<&str, CgroupError> {
        let rel = self
            .text
            .lines()
            .find_map(h.member)
            .ok_or(CgroupError::NotFound {
                what: h.membership,
                path: self.file.clone(),
            })?;
        if rel.trim_end_matches('/').is_empty() {
            return Err(CgroupError::RootCgroup {
                what: h.root_name,
                path: self.file.clone(),
            });
        }
        Ok(rel)
    }

    /// `rel` under `h`'s conventional root, when that directory lists the
    /// process.
    pub fn conventional(&self, h: &Hierarchy, rel: &str) -> Option<PathBuf> {
        conventional(h.root, rel, self.pid)
    }

    /// `rel` under wherever mountinfo says `h` is mounted.
    pub fn mounted(&self, h: &Hierarchy, rel: &str) -> Result<PathBuf, CgroupError> {
        let mounts_path = PathBuf::from(MOUNTINFO);
        let mounts = read_small(&mounts_path).map_err(|source| CgroupError::Read {
            path: mounts_path.clone(),
            source,
        })?;
        mountinfo::resolve(&mountinfo::parse(&mounts), rel, h.is_mount).ok_or(
            CgroupError::NotFound {
                what: h.mount,
                path: mounts_path,
            },
        )
    }
}

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

    #[test]
    fn each_hierarchy_takes_its_own_membership_line_and_refuses_the_root() {
        let m = |text: &str| Membership {
            pid: 1,
            file: PathBuf::from("/proc/1/cgroup"),
            text: text.into(),
        };
        let hybrid = "12:cpu,cpuacct:/a\n4:blkio,devices:/docker/x\n0::/system.slice/x.scope\n";
        assert_eq!(m(hybrid).rel(&UNIFIED).unwrap(), "/system.slice/x.scope");
        assert_eq!(m(hybrid).rel(&V1_DEVICES).unwrap(), "/docker/x");
        assert!(matches!(
            m("0::/\n").rel(&UNIFIED),
            Err(CgroupError::RootCgroup {
                what: "cgroup v2",
                ..
            })
        ));
        assert!(matches!(
            m("4:devices:/\n").rel(&V1_DEVICES),
            Err(CgroupError::RootCgroup {
                what: "devices cgroup",
                ..
            })
        ));
        assert!(matches!(
            m("4:devicesx:/a\n").rel(&V1_DEVICES),
            Err(CgroupError::NotFound {
                what: "devices cgroup",
                ..
            })
        ));
        assert!(matches!(
            m("4:devices:/a\n").rel(&UNIFIED),
            Err(CgroupError::NotFound {
                what: "cgroup v2 membership",
                ..
            })
        ));
    }
}
