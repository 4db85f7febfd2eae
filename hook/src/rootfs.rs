//! Creating device nodes under the container's root, which belongs to an
//! untrusted image: every component is opened relative to the root with
//! O_NOFOLLOW, so a symlink in the image is refused instead of followed out.
//!
//! Contract: the root itself must not be a symlink. A node is made with
//! `mknodat` and then owned through a descriptor of *that* node (opened
//! `O_PATH|O_NOFOLLOW`, checked to be the char device just made, then
//! `fchownat(AT_EMPTY_PATH)`), never by name, so swapping the name for a
//! link to another file between the two steps changes nothing but our
//! error. Nodes go only into directories on the container's own mounts
//! (its root's or its `/dev`'s, told apart by mount id): a directory mounted
//! from elsewhere (a volume or a host directory bind-mounted at `/dev/dri`)
//! would keep them after the container is gone, so it is refused.
//! Everything created is recorded and [`ContainerRoot::rollback`] removes it.

use crate::sys::{self, mount_id, openat};
use amd_container_common::DeviceNode;
use nix::fcntl::AtFlags;
use nix::mount::MntFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{unlinkat, Gid, Uid, UnlinkatFlags};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("cannot open the container root {path}: {source}")]
    OpenRoot { path: PathBuf, source: io::Error },
    #[error("refusing to follow {path} in the container: it is a symlink")]
    Symlink { path: PathBuf },
    #[error("refusing to replace {path} in the container: it exists and is {what}")]
    Occupied { path: PathBuf, what: String },
    #[error("{path} is not a plain absolute device path")]
    BadPath { path: PathBuf },
    #[error(
        "refusing to create {path} in the container: {dir} is a mount of another filesystem \
         (a volume or a host directory), where the node would outlive the container"
    )]
    ForeignDir { path: PathBuf, dir: PathBuf },
    #[error("{path} in the container changed while the hook was creating it (now {what})")]
    Raced { path: PathBuf, what: String },
    #[error("{op} {path} in the container: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// How a node gets into the container.
pub enum Placement<'a> {
    /// mknod with the host's major:minor, mode and owner.
    Mknod,
    /// Bind-mount the host node (containers with a user namespace, where
    /// mknod is refused). The fds are detached mounts of the host nodes
    /// (`open_tree(OPEN_TREE_CLONE)`), in the order of the nodes placed.
    Bind(&'a [OwnedFd]),
}

enum Created {
    Dir(PathBuf),
    Node(PathBuf),
    Mount(PathBuf),
}

/// The container root plus what this run created in it, for rollback.
pub struct ContainerRoot {
    fd: OwnedFd,
    /// The mounts nodes may go to: the root's and its `/dev`'s (mount ids).
    own_mounts: Vec<u64>,
    created: Vec<Created>,
    /// The directory the last node went into (its path in the container,
    /// opened as [`Self::parent_dir`] opens it): most nodes share
    /// `/dev/dri`, which is then walked once.
    last_parent: Option<(PathBuf, OwnedFd)>,
}

fn cstr(s: &std::ffi::OsStr) -> Result<CString, RootfsError> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(s.as_bytes()).map_err(|_| RootfsError::BadPath {
        path: PathBuf::from(s),
    })
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    Ok(nix::sys::stat::fstat(fd)?)
}

fn lstatat(dir: RawFd, name: &std::ffi::CStr) -> io::Result<libc::stat> {
    Ok(nix::sys::stat::fstatat(
        Some(dir),
        name,
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?)
}

fn file_kind(mode: libc::mode_t) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFLNK => "a symlink",
        libc::S_IFDIR => "a directory",
        libc::S_IFREG => "a regular file",
        libc::S_IFCHR => "another character device",
        libc::S_IFBLK => "a block device",
        _ => "a special file",
    }
}

/// Plain components of an absolute path (`/dev/dri/renderD128`).
fn components(path: &Path) -> Result<Vec<&std::ffi::OsStr>, RootfsError> {
    let mut out = Vec::new();
    for (i, c) in path.components().enumerate() {
        match c {
            Component::RootDir if i == 0 => {}
            Component::Normal(n) => out.push(n),
            _ => return Err(RootfsError::BadPath { path: path.into() }),
        }
    }
    if out.is_empty() || !path.is_absolute() {
        return Err(RootfsError::BadPath { path: path.into() });
    }
    Ok(out)
}

impl ContainerRoot {
    /// Opens the root directory itself. Its path comes from the runtime (the
    /// spec's `root.path`), not from the image.
    pub fn open(path: &Path) -> Result<ContainerRoot, RootfsError> {
        let c = cstr(path.as_os_str())?;
        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        let fd = match openat(libc::AT_FDCWD, &c, flags, 0) {
            Ok(fd) => fd,
            Err(source) => {
                let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink());
                return Err(if is_link {
                    RootfsError::Symlink { path: path.into() }
                } else {
                    RootfsError::OpenRoot {
                        path: path.into(),
                        source,
                    }
                });
            }
        };
        let open_err = |source| RootfsError::OpenRoot {
            path: path.into(),
            source,
        };
        let mut own_mounts = vec![mount_id(fd.as_raw_fd(), c"").map_err(open_err)?];
        if let Ok(st) = lstatat(fd.as_raw_fd(), c"dev") {
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                own_mounts.push(mount_id(fd.as_raw_fd(), c"dev").map_err(open_err)?);
            }
        }
        Ok(ContainerRoot {
            fd,
            own_mounts,
            created: Vec::new(),
            last_parent: None,
        })
    }

    /// Opens (creating as needed) the directory holding `path`'s last
    /// component, never following a symlink.
    fn parent_dir(&mut self, path: &Path) -> Result<(OwnedFd, CString), RootfsError> {
        let parts = components(path)?;
        let Some((last, dirs)) = parts.split_last() else {
            return Err(RootfsError::BadPath { path: path.into() });
        };
        // The last parent was checked (own mount, no symlink) when it was opened.
        if let Some((cached, fd)) = &self.last_parent {
            if path.parent() == Some(cached.as_path()) {
                if let Ok(dir) = fd.try_clone() {
                    return Ok((dir, cstr(last)?));
                }
            }
        }
        let mut dir = self.fd.try_clone().map_err(|source| RootfsError::Io {
            op: "dup",
            path: "/".into(),
            source,
        })?;
        let mut so_far = PathBuf::from("/");
        for name in dirs {
            so_far.push(name);
            let c = cstr(name)?;
            let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            dir = match openat(dir.as_raw_fd(), &c, flags, 0) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    nix::sys::stat::mkdirat(
                        Some(dir.as_raw_fd()),
                        c.as_c_str(),
                        Mode::from_bits_retain(0o755),
                    )
                    .map_err(|e| RootfsError::Io {
                        op: "mkdir",
                        path: so_far.clone(),
                        source: e.into(),
                    })?;
                    self.created.push(Created::Dir(so_far.clone()));
                    openat(dir.as_raw_fd(), &c, flags, 0).map_err(|source| RootfsError::Io {
                        op: "open",
                        path: so_far.clone(),
                        source,
                    })?
                }
                Err(source) => {
                    return Err(match lstatat(dir.as_raw_fd(), &c) {
                        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                            RootfsError::Symlink { path: so_far }
                        }
                        Ok(st) => RootfsError::Occupied {
                            path: so_far,
                            what: file_kind(st.st_mode).into(),
                        },
                        Err(_) => RootfsError::Io {
                            op: "open",
                            path: so_far,
                            source,
                        },
                    })
                }
            };
        }
        let mnt = mount_id(dir.as_raw_fd(), c"").map_err(|source| RootfsError::Io {
            op: "stat",
            path: so_far.clone(),
            source,
        })?;
        if !self.own_mounts.contains(&mnt) {
            return Err(RootfsError::ForeignDir {
                path: path.into(),
                dir: so_far,
            });
        }
        if let (Some(parent), Ok(keep)) = (path.parent(), dir.try_clone()) {
            self.last_parent = Some((parent.to_path_buf(), keep));
        }
        Ok((dir, cstr(last)?))
    }

    /// Puts `node` into the container at the same path as on the host.
    /// Returns false when an identical node is already there.
    pub fn place(
        &mut self,
        node: &DeviceNode,
        how: &Placement,
        index: usize,
    ) -> Result<bool, RootfsError> {
        self.place_with(node, how, index, &mut || {})
    }

    /// [`ContainerRoot::place`], running `after_mknod` between creating a
    /// node and owning it (tests race an attacker there).
    fn place_with(
        &mut self,
        node: &DeviceNode,
        how: &Placement,
        index: usize,
        after_mknod: &mut dyn FnMut(),
    ) -> Result<bool, RootfsError> {
        let path = node.path.as_path();
        let (dir, name) = self.parent_dir(path)?;
        let dev = libc::makedev(node.major, node.minor);
        let io_err = |op, source| RootfsError::Io {
            op,
            path: path.into(),
            source,
        };
        match lstatat(dir.as_raw_fd(), &name) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == dev => {
                return Ok(false)
            }
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                return Err(RootfsError::Symlink { path: path.into() })
            }
            Ok(st) => {
                return Err(RootfsError::Occupied {
                    path: path.into(),
                    what: file_kind(st.st_mode).into(),
                })
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(io_err("stat", e)),
        }
        match how {
            Placement::Mknod => {
                nix::sys::stat::mknodat(
                    Some(dir.as_raw_fd()),
                    name.as_c_str(),
                    SFlag::S_IFCHR,
                    Mode::from_bits_retain(node.mode & 0o7777),
                    dev,
                )
                .map_err(|e| io_err("mknod", e.into()))?;
                self.created.push(Created::Node(path.into()));
                after_mknod();
                // Own the node through a descriptor of it, after checking it
                // is the device just made: never chown by name.
                let made = openat(dir.as_raw_fd(), &name, libc::O_PATH | libc::O_NOFOLLOW, 0)
                    .map_err(|e| io_err("open", e))?;
                let st = fstat(made.as_raw_fd()).map_err(|e| io_err("stat", e))?;
                if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != dev {
                    return Err(RootfsError::Raced {
                        path: path.into(),
                        what: file_kind(st.st_mode).into(),
                    });
                }
                // `made` is an open O_PATH descriptor; the empty path with
                // AT_EMPTY_PATH names that very file.
                nix::unistd::fchownat(
                    Some(made.as_raw_fd()),
                    c"",
                    Some(Uid::from_raw(node.uid)),
                    Some(Gid::from_raw(node.gid)),
                    AtFlags::AT_EMPTY_PATH,
                )
                .map_err(|e| io_err("chown", e.into()))?;
            }
            Placement::Bind(host_fds) => {
                let target = openat(
                    dir.as_raw_fd(),
                    &name,
                    libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY,
                    0,
                )
                .map_err(|e| io_err("create", e))?;
                self.created.push(Created::Node(path.into()));
                sys::move_mount(host_fds[index].as_fd(), target.as_fd())
                    .map_err(|e| io_err("bind-mount", e))?;
                self.created.push(Created::Mount(path.into()));
            }
        }
        Ok(true)
    }

    /// Undoes everything this run created, newest first. Best effort: it runs
    /// on the error path, where the first error is the one worth reporting.
    pub fn rollback(&mut self) {
        while let Some(c) = self.created.pop() {
            let result = match &c {
                Created::Mount(p) => self.with_parent(p, |dir, name| {
                    let target = openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
                    let t = CString::new(format!("/proc/self/fd/{}", target.as_raw_fd()))
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                    Ok(nix::mount::umount2(t.as_c_str(), MntFlags::MNT_DETACH)?)
                }),
                Created::Node(p) => self.with_parent(p, |dir, name| {
                    Ok(unlinkat(
                        Some(dir),
                        name.as_c_str(),
                        UnlinkatFlags::NoRemoveDir,
                    )?)
                }),
                Created::Dir(p) => self.with_parent(p, |dir, name| {
                    Ok(unlinkat(
                        Some(dir),
                        name.as_c_str(),
                        UnlinkatFlags::RemoveDir,
                    )?)
                }),
            };
            if let Err(e) = result {
                log::warn!("rollback: {e}");
            }
        }
    }

    fn with_parent(
        &self,
        path: &Path,
        f: impl FnOnce(RawFd, &CString) -> io::Result<()>,
    ) -> io::Result<()> {
        let parts = components(path)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let invalid = |e: RootfsError| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
        let Some((last, dirs)) = parts.split_last() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty path"));
        };
        let mut dir = self.fd.try_clone()?;
        for name in dirs {
            dir = openat(
                dir.as_raw_fd(),
                &cstr(name).map_err(invalid)?,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
        }
        f(dir.as_raw_fd(), &cstr(last).map_err(invalid)?)
    }

    /// Forgets the rollback record once the whole injection succeeded.
    pub fn commit(&mut self) {
        self.created.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("amd-hook-rootfs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn node(path: &str) -> DeviceNode {
        DeviceNode {
            path: path.into(),
            major: 1,
            minor: 3,
            mode: 0o666,
            uid: 0,
            gid: 0,
        }
    }

    #[test]
    fn refuses_symlinked_parent_and_leaves_target_alone() {
        let root = tmp("symlink");
        let outside = tmp("outside");
        std::fs::create_dir(root.join("dev")).unwrap();
        symlink(&outside, root.join("dev/dri")).unwrap();
        let mut r = ContainerRoot::open(&root).unwrap();
        let err = r
            .place(&node("/dev/dri/renderD128"), &Placement::Mknod, 0)
            .unwrap_err();
        assert!(matches!(err, RootfsError::Symlink { .. }), "{err}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn refuses_symlink_at_the_node_itself() {
        let root = tmp("symlink-leaf");
        std::fs::create_dir(root.join("dev")).unwrap();
        symlink("/etc/passwd", root.join("dev/kfd")).unwrap();
        let mut r = ContainerRoot::open(&root).unwrap();
        let err = r
            .place(&node("/dev/kfd"), &Placement::Mknod, 0)
            .unwrap_err();
        assert!(matches!(err, RootfsError::Symlink { .. }), "{err}");
    }

    #[test]
    fn refuses_a_symlinked_root() {
        let real = tmp("real-root");
        let link =
            std::env::temp_dir().join(format!("amd-hook-rootfs-link-{}", std::process::id()));
        let _ = std::fs::remove_file(&link);
        symlink(&real, &link).unwrap();
        assert!(matches!(
            ContainerRoot::open(&link),
            Err(RootfsError::Symlink { .. })
        ));
        std::fs::remove_file(&link).unwrap();
    }

    #[test]
    fn nul_in_the_root_path_is_an_error_not_a_panic() {
        use std::os::unix::ffi::OsStrExt;
        let p = Path::new(std::ffi::OsStr::from_bytes(b"/tmp/a\0b"));
        assert!(matches!(
            ContainerRoot::open(p),
            Err(RootfsError::BadPath { .. })
        ));
    }

    #[test]
    fn rejects_dot_dot() {
        let root = tmp("dotdot");
        let mut r = ContainerRoot::open(&root).unwrap();
        assert!(matches!(
            r.place(&node("/dev/../../x"), &Placement::Mknod, 0),
            Err(RootfsError::BadPath { .. })
        ));
    }

    fn root_or_skip() -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        // CI runs as root: there, not running these tests is a failure.
        assert!(
            std::env::var("CI").is_err(),
            "CI but not root: mknod test cannot run"
        );
        eprintln!("SKIPPED (not root): mknod needs root");
        false
    }

    /// An attacker swaps the node just made for a hard link to a host file
    /// before the hook owns it: the host file keeps its owner, the hook
    /// reports the race, and rollback removes only the name it created.
    #[test]
    fn a_node_swapped_before_chown_is_never_chowned() {
        use std::os::unix::fs::MetadataExt;
        if !root_or_skip() {
            return;
        }
        let root = tmp("race");
        std::fs::create_dir(root.join("dev")).unwrap();
        let precious = root.join("precious");
        std::fs::write(&precious, "host data").unwrap();
        let mut r = ContainerRoot::open(&root).unwrap();
        let n = DeviceNode {
            gid: 4242,
            ..node("/dev/kfd")
        };
        let kfd = root.join("dev/kfd");
        let err = r
            .place_with(&n, &Placement::Mknod, 0, &mut || {
                std::fs::remove_file(&kfd).unwrap();
                std::fs::hard_link(&precious, &kfd).unwrap();
            })
            .unwrap_err();
        assert!(matches!(err, RootfsError::Raced { .. }), "{err}");
        let meta = std::fs::metadata(&precious).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (0, 0),
            "the host file was chowned"
        );
        r.rollback();
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "host data");
    }

    #[test]
    fn a_node_is_made_with_the_hosts_owner() {
        use std::os::unix::fs::MetadataExt;
        if !root_or_skip() {
            return;
        }
        let root = tmp("owner");
        let mut r = ContainerRoot::open(&root).unwrap();
        let n = DeviceNode {
            gid: 4242,
            mode: 0o660,
            ..node("/dev/kfd")
        };
        assert!(r.place(&n, &Placement::Mknod, 0).unwrap());
        // (The mode is the host's under the injector's umask 0; the e2e
        // tests compare it with the host's nodes.)
        let meta = std::fs::symlink_metadata(root.join("dev/kfd")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 4242));
    }

    #[test]
    fn creates_dirs_and_rolls_back_when_root() {
        if !nix::unistd::geteuid().is_root() {
            // CI runs as root: there, not running this test is a failure.
            assert!(
                std::env::var("CI").is_err(),
                "CI but not root: mknod test cannot run"
            );
            eprintln!("SKIPPED (not root): mknod needs root");
            return;
        }
        let root = tmp("mknod");
        let mut r = ContainerRoot::open(&root).unwrap();
        assert!(r.place(&node("/dev/x/null"), &Placement::Mknod, 0).unwrap());
        assert!(
            !r.place(&node("/dev/x/null"), &Placement::Mknod, 0).unwrap(),
            "second place is a no-op"
        );
        r.rollback();
        assert!(!root.join("dev").exists());
    }
}
