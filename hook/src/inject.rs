//! Live injection: the container's nodes are created inside its mount
//! namespace and allowed in its device cgroup, all or nothing.
//!
//! A non-root container user (`process.user`) already has its groups when
//! the hook runs, so a node it could not open with the host's mode and group
//! is created in the container with the user's primary gid instead of the
//! host's (the host's mode bits kept; [`user_group`]); the host's node is
//! never changed, so a bind-mounted node (user namespace) is left as it is,
//! with a warning.
//!
//! A process in the host's mount namespace is refused before anything is
//! done: the hook's own namespace, or PID 1's (when the runtime and the hook
//! run in a private one; when the hook may read it).
//!
//! A rootless engine (Podman run by a user) runs the hook as root of the
//! user's own user namespace: there mknod is refused and no device program
//! can be attached (BPF needs the initial namespace's privileges), and the
//! engine confines no devices by cgroup either — a rootless container opens
//! what its user's host permissions allow. There the nodes are bind-mounted
//! from the host, as CDI's are, the device cgroup is left alone, and a node
//! the user may not open fails the create, naming it.

use crate::cgroup::{CgroupError, DeviceCgroup};
use crate::container_spec::view::Spec;
use crate::rootfs::{ContainerRoot, Placement, RootfsError};
use amd_container_common::access::{self, Grant, NodeKind, ProcessUser};
use amd_container_common::{ContainerEdits, DeviceNode};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("cannot enter the container's namespace {path}: {source}")]
    Namespace { path: String, source: io::Error },
    #[error(
        "refusing to inject into process {pid}: it shares the hook's own mount namespace \
         (the host's), so it is not a container being created"
    )]
    HostNamespace { pid: i32 },
    #[error(
        "refusing to inject into process {pid}: it is in the mount namespace of PID 1 (the \
         host's), so it is not a container being created"
    )]
    InitNamespace { pid: i32 },
    #[error("cannot open host node {path}: {source}")]
    HostNode { path: String, source: io::Error },
    #[error(
        "rootless engine: its user may not open {path} (mode {mode:04o}, {owner}), \
         so the container cannot be given it. Give the user access to the GPU's nodes (the \
         groups that own them), or run the container rootful; for a rootless container CDI \
         (--device amd.com/gpu=N) bind-mounts the same nodes"
    )]
    RootlessNoAccess {
        path: String,
        mode: u32,
        owner: String,
    },
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

/// What one injection did, for the log.
pub struct Injected {
    pub created: usize,
    /// Nodes created with the container user's group (see [`user_group`]).
    pub regrouped: Vec<String>,
    pub cgroup: String,
    pub bind_mounted: bool,
}

/// Identity (device, inode) of a namespace file such as `/proc/PID/ns/mnt`.
fn ns_id(path: &str) -> Result<(u64, u64), InjectError> {
    std::fs::metadata(path)
        .map(|m| (m.dev(), m.ino()))
        .map_err(|source| InjectError::Namespace {
            path: path.into(),
            source,
        })
}

/// The node to create in the container for `node`: the host's, or, when
/// the container's non-root `user` needs it (the admin's `kinds`) and may be
/// given it, the same with the user's primary gid as its group. Mode bits
/// stay the host's. `bind`: the node will be a bind mount of the host's,
/// which is never changed; then only a warning.
pub fn user_group(
    node: &DeviceNode,
    user: &ProcessUser,
    kinds: &[NodeKind],
    bind: bool,
) -> Option<DeviceNode> {
    match access::grant(node, user, kinds) {
        Grant::None => None,
        Grant::Group(gid) if bind => {
            log::warn!(
                "{}: the container's user (uid {}) cannot open it (mode {:04o}, gid {}) and, \
                 bind-mounted from the host for a user namespace, it is not changed; give the \
                 container group {gid} (CDI additionalGids, --group-add {gid})",
                node.path.display(),
                user.uid,
                node.mode,
                node.gid
            );
            None
        }
        Grant::Group(_) if user.gid != 0 => Some(DeviceNode {
            gid: user.gid,
            ..node.clone()
        }),
        Grant::Group(_) | Grant::Refused => {
            log::warn!(
                "{}: the container's user (uid {} gid {}) cannot open it (mode {:04o} uid {} \
                 gid {}) and it is not granted (never root's group, never wider than the \
                 host's mode bits)",
                node.path.display(),
                user.uid,
                user.gid,
                node.mode,
                node.uid,
                node.gid
            );
            None
        }
    }
}

/// Gives the container of `pid` (root at `rootfs`) the nodes of `edits`;
/// nodes its non-root user needs (`kinds`) get the user's group.
pub fn inject(
    pid: i32,
    rootfs: &Path,
    spec: &Spec,
    edits: &ContainerEdits,
    kinds: &[NodeKind],
) -> Result<Injected, InjectError> {
    // The host's mount namespace is the hook's own, or PID 1's when the
    // runtime and the hook run in a private one.
    let target = ns_id(&format!("/proc/{pid}/ns/mnt"))?;
    if target == ns_id("/proc/self/ns/mnt")? {
        return Err(InjectError::HostNamespace { pid });
    }
    // PID 1's may be closed to the hook (an init it may not trace, as a
    // VM's agent can be): then the hook's own is the one reference.
    match ns_id("/proc/1/ns/mnt") {
        Ok(init) if init == target => return Err(InjectError::InitNamespace { pid }),
        Ok(_) => {}
        Err(e) => log::debug!("PID 1's mount namespace not compared: {e}"),
    }
    let rootless = !initial_user_namespace()?;
    let mut cgroup = if rootless {
        for n in &edits.device_nodes {
            may_open(n)?;
        }
        None
    } else {
        Some(DeviceCgroup::open(pid)?)
    };
    let userns = ns_id(&format!("/proc/{pid}/ns/user"))? != ns_id("/proc/self/ns/user")?;
    // Host nodes are opened before entering the container's namespace; in a
    // user namespace (the container's or a rootless engine's own) they are
    // bind-mounted because mknod is refused there.
    let bind = userns || rootless;
    let host_fds = if bind {
        edits
            .device_nodes
            .iter()
            .map(|n| clone_mount(&n.path))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let placement = if bind {
        Placement::Bind(&host_fds)
    } else {
        Placement::Mknod
    };

    let host_root = root_id("/");
    let mnt = format!("/proc/{pid}/ns/mnt");
    let ns = File::open(&mnt).map_err(|source| InjectError::Namespace {
        path: mnt.clone(),
        source,
    })?;
    // The hook is single-threaded, as setns(CLONE_NEWNS) requires.
    if let Err(e) = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNS) {
        return Err(InjectError::Namespace {
            path: mnt,
            source: e.into(),
        });
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    if userns {
        // The container's /dev belongs to its user namespace: files created
        // there must be owned by an id mapped into it (else EOVERFLOW), so
        // create them as the container's root.
        let (uid, gid) = (mapped_root(pid, "uid_map")?, mapped_root(pid, "gid_map")?);
        nix::unistd::setfsgid(nix::unistd::Gid::from_raw(gid));
        nix::unistd::setfsuid(nix::unistd::Uid::from_raw(uid));
    }

    // Before pivot_root (prestart, createRuntime) the root is at its host
    // path in the container's namespace; after it (a runtime that pivots
    // earlier) the namespace's own root is the container's. "/" is used only
    // when it provably is not the host's root.
    let mut root = match ContainerRoot::open(rootfs) {
        Err(RootfsError::OpenRoot { source, .. })
            if source.kind() == io::ErrorKind::NotFound
                && root_id("/").is_some_and(|id| Some(id) != host_root) =>
        {
            log::debug!(
                "{} not in the container's namespace: already pivoted, using /",
                rootfs.display()
            );
            ContainerRoot::open(Path::new("/"))?
        }
        other => other?,
    };
    let mut created = 0;
    let mut regrouped = Vec::new();
    let user = spec.user();
    for (i, node) in edits.device_nodes.iter().enumerate() {
        let mine = user_group(node, &user, kinds, bind);
        match root.place(mine.as_ref().unwrap_or(node), &placement, i) {
            Ok(true) => {
                created += 1;
                if mine.is_some() {
                    regrouped.push(node.path.display().to_string());
                }
            }
            Ok(false) => {}
            Err(e) => {
                root.rollback();
                return Err(e.into());
            }
        }
    }
    if let Some(cgroup) = cgroup.as_mut() {
        if let Err(e) = cgroup.allow(&edits.device_nodes, spec.device_rules()) {
            root.rollback();
            return Err(e.into());
        }
    }
    root.commit();
    Ok(Injected {
        created,
        regrouped,
        cgroup: cgroup.as_ref().map_or_else(
            || "no device cgroup: a rootless engine's container opens what its user may".into(),
            DeviceCgroup::describe,
        ),
        bind_mounted: bind,
    })
}

/// Does the hook run in the initial user namespace (a rootful engine)? Its
/// uid map is then the identity of every id.
fn initial_user_namespace() -> Result<bool, InjectError> {
    let path = "/proc/self/uid_map";
    let text = std::fs::read_to_string(path).map_err(|source| InjectError::Namespace {
        path: path.into(),
        source,
    })?;
    Ok(is_identity_map(&text))
}

fn is_identity_map(uid_map: &str) -> bool {
    let lines: Vec<Vec<&str>> = uid_map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    lines == [vec!["0", "0", "4294967295"]]
}

/// A rootless engine's container may have `node` only when the engine's
/// user may open it (read and write, as the kernel checks it for this
/// process: the user's host uid and groups).
fn may_open(node: &DeviceNode) -> Result<(), InjectError> {
    use nix::unistd::{access, AccessFlags};
    access(&node.path, AccessFlags::R_OK | AccessFlags::W_OK).map_err(|_| {
        InjectError::RootlessNoAccess {
            path: node.path.display().to_string(),
            mode: node.mode,
            owner: owner(node.uid, node.gid),
        }
    })
}

/// A node's owner as the hook sees it; in a rootless engine's user namespace
/// ids of the host that are not mapped there read as the overflow id.
fn owner(uid: u32, gid: u32) -> String {
    const OVERFLOW: u32 = 65534;
    if uid == OVERFLOW && gid == OVERFLOW {
        "owner and group outside the engine's user namespace".into()
    } else {
        format!("uid {uid}, gid {gid} in the engine's user namespace")
    }
}

/// Device and inode of a directory, to tell two roots apart.
fn root_id(path: &str) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The host id that container id 0 maps to in `/proc/PID/{uid,gid}_map`.
fn mapped_root(pid: i32, map: &str) -> Result<u32, InjectError> {
    let path = format!("/proc/{pid}/{map}");
    let text = std::fs::read_to_string(&path).map_err(|source| InjectError::Namespace {
        path: path.clone(),
        source,
    })?;
    text.lines()
        .find_map(|l| {
            let f: Vec<u32> = l
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            (f.len() == 3 && f[0] == 0).then_some(f[1])
        })
        .ok_or_else(|| InjectError::Namespace {
            path,
            source: io::Error::new(io::ErrorKind::NotFound, "container root is not mapped"),
        })
}

/// A detached bind mount of a host node (`open_tree(OPEN_TREE_CLONE)`): unlike
/// a path, it can be attached inside another mount namespace (`move_mount`).
fn clone_mount(path: &Path) -> Result<OwnedFd, InjectError> {
    use std::os::unix::ffi::OsStrExt;
    let c =
        std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| InjectError::HostNode {
            path: path.display().to_string(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })?;
    crate::sys::open_tree_clone(&c).map_err(|source| InjectError::HostNode {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_full_identity_map_is_the_initial_namespace() {
        assert!(is_identity_map("         0          0 4294967295\n"));
        assert!(!is_identity_map(
            "         0       1000          1\n         1     100000      65536\n"
        ));
        assert!(!is_identity_map("         0          0      65536\n"));
        assert!(!is_identity_map(""));
    }
}
