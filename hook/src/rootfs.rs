//! Creating device nodes under the container's root, which belongs to an
//! untrusted image: every component is opened relative to the root with
//! O_NOFOLLOW, so a symlink in the image is refused instead of followed out.

use amd_container_common::DeviceNode;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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
    created: Vec<Created>,
    /// The directory the last node went into (its path in the container,
    /// opened as [`Self::parent_dir`] opens it): most nodes share
    /// `/dev/dri`, which is then walked once.
    last_parent: Option<(PathBuf, OwnedFd)>,
}

fn cstr(s: &std::ffi::OsStr) -> CString {
    use std::os::unix::ffi::OsStrExt;
    CString::new(s.as_bytes()).expect("path components have no NUL")
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn openat(
    dir: RawFd,
    name: &CString,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let fd = check(unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn lstatat(dir: RawFd, name: &CString) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
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
        let c = cstr(path.as_os_str());
        let fd =
            openat(libc::AT_FDCWD, &c, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(|source| {
                RootfsError::OpenRoot {
                    path: path.into(),
                    source,
                }
            })?;
        Ok(ContainerRoot {
            fd,
            created: Vec::new(),
            last_parent: None,
        })
    }

    /// Opens (creating as needed) the directory holding `path`'s last
    /// component, never following a symlink.
    fn parent_dir(&mut self, path: &Path) -> Result<(OwnedFd, CString), RootfsError> {
        let parts = components(path)?;
        let (last, dirs) = parts.split_last().expect("components are not empty");
        if let Some((cached, fd)) = &self.last_parent {
            if path.parent() == Some(cached.as_path()) {
                if let Ok(dir) = fd.try_clone() {
                    return Ok((dir, cstr(last)));
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
            let c = cstr(name);
            let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            dir = match openat(dir.as_raw_fd(), &c, flags, 0) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) }).map_err(
                        |source| RootfsError::Io {
                            op: "mkdir",
                            path: so_far.clone(),
                            source,
                        },
                    )?;
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
        if let (Some(parent), Ok(keep)) = (path.parent(), dir.try_clone()) {
            self.last_parent = Some((parent.to_path_buf(), keep));
        }
        Ok((dir, cstr(last)))
    }

    /// Puts `node` into the container at the same path as on the host.
    /// Returns false when an identical node is already there.
    pub fn place(
        &mut self,
        node: &DeviceNode,
        how: &Placement,
        index: usize,
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
                let mode = libc::S_IFCHR | (node.mode & 0o7777);
                check(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, dev) })
                    .map_err(|e| io_err("mknod", e))?;
                self.created.push(Created::Node(path.into()));
                check(unsafe {
                    libc::fchownat(
                        dir.as_raw_fd(),
                        name.as_ptr(),
                        node.uid,
                        node.gid,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                })
                .map_err(|e| io_err("chown", e))?;
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
                const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
                const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
                let empty = c"";
                let ret = unsafe {
                    libc::syscall(
                        libc::SYS_move_mount,
                        host_fds[index].as_raw_fd(),
                        empty.as_ptr(),
                        target.as_raw_fd(),
                        empty.as_ptr(),
                        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
                    )
                };
                check(ret as libc::c_int).map_err(|e| io_err("bind-mount", e))?;
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
                    let t = CString::new(format!("/proc/self/fd/{}", target.as_raw_fd())).unwrap();
                    check(unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) }).map(drop)
                }),
                Created::Node(p) => self.with_parent(p, |dir, name| {
                    check(unsafe { libc::unlinkat(dir, name.as_ptr(), 0) }).map(drop)
                }),
                Created::Dir(p) => self.with_parent(p, |dir, name| {
                    check(unsafe { libc::unlinkat(dir, name.as_ptr(), libc::AT_REMOVEDIR) })
                        .map(drop)
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
        let (last, dirs) = parts.split_last().expect("components are not empty");
        let mut dir = self.fd.try_clone()?;
        for name in dirs {
            dir = openat(
                dir.as_raw_fd(),
                &cstr(name),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
        }
        f(dir.as_raw_fd(), &cstr(last))
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
    fn rejects_dot_dot() {
        let root = tmp("dotdot");
        let mut r = ContainerRoot::open(&root).unwrap();
        assert!(matches!(
            r.place(&node("/dev/../../x"), &Placement::Mknod, 0),
            Err(RootfsError::BadPath { .. })
        ));
    }

    #[test]
    fn creates_dirs_and_rolls_back_when_root() {
        if unsafe { libc::geteuid() } != 0 {
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
