//! Editing an engine's file the way an admin expects: under a lock (two runs
//! at once lose neither edit), with a backup before our first change, by
//! atomic rename, never rewriting a file we do not change, and never touching
//! a file we cannot parse.
//!
//! The file keeps its identity: a symlink stays a symlink (its target is
//! edited; a dangling one is refused, never replaced by a regular file), the
//! owner, group, mode and extended attributes are carried over to the new
//! inode. A file that cannot be replaced (immutable, append-only, on a
//! read-only mount, a mount point) is refused before anything is written, so
//! it gets no backup; any other failure removes the temp file and the backup
//! made by this run: nothing is left behind.

use super::error::{ConfigureError, EditError};
use amd_container_common::atomic_file;
use amd_container_common::flock;
use nix::sys::statvfs::{fstatvfs, FsFlags};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What to do with a file, decided from its current content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    Write(Vec<u8>),
    Delete,
}

/// How a file edit went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    Unchanged,
    /// Written; `backup` names a backup made by this run.
    Written {
        backup: Option<PathBuf>,
    },
    Deleted,
    /// `--dry-run`: what would have happened.
    WouldWrite,
    WouldDelete,
}

impl FileOutcome {
    pub fn changed(&self) -> bool {
        !matches!(self, FileOutcome::Unchanged)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub dry_run: bool,
    /// Copy the file to `<file>.bak` before changing it, unless that backup
    /// exists already (it then keeps the state from before the first change).
    pub backup: bool,
    /// The toolkit's own state: a new file is 0600, an existing one loses every
    /// group and other permission (atomic_file::stage_private).
    pub private: bool,
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> EditError + 'a {
    move |source| EditError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// An exclusive `flock` for the files of one directory, released on drop.
/// Not a lock on the directory itself (anyone who can read `/etc/docker`
/// could hold that one) nor a file beside the config (a stray file in a
/// drop-in directory could be read as configuration): a 0600 file named
/// after the directory's device and inode in the caller's own lock directory
/// ([`lock_root`]), which only the caller can open.
struct DirLock {
    _held: flock::Held,
}

/// Where the locks live: `$AMD_CTK_LOCK_DIR`, else `/run/amd-container-toolkit`
/// for root, else a directory of the caller's own in the temp directory.
fn lock_root() -> PathBuf {
    if let Some(d) = std::env::var_os("AMD_CTK_LOCK_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    match nix::unistd::geteuid().as_raw() {
        0 => PathBuf::from("/run/amd-container-toolkit"),
        uid => std::env::temp_dir().join(format!("amd-container-toolkit-{uid}")),
    }
}

/// The lock file for the files of `dir`.
fn lock_path(dir: &Path) -> Result<PathBuf, EditError> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(dir).map_err(io_err("open (to lock)", dir))?;
    Ok(lock_root().join(format!("configure-{:x}-{}.lock", meta.dev(), meta.ino())))
}

/// How long a run waits for another holder of the lock (a stopped or hung
/// `amd-ctk`, an admin's `flock`); `AMD_CTK_LOCK_TIMEOUT` (seconds) overrides.
const LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub fn lock_timeout() -> std::time::Duration {
    std::env::var("AMD_CTK_LOCK_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(LOCK_TIMEOUT, std::time::Duration::from_secs_f64)
}

fn lock_dir(dir: &Path) -> Result<DirLock, EditError> {
    let path = lock_path(dir)?;
    let root = lock_root();
    flock::owned_private_dir(&root).map_err(io_err("create", &root))?;
    let f = flock::open_private(&path).map_err(io_err("open (to lock)", &path))?;
    let timeout = lock_timeout();
    match flock::lock_exclusive(f, &path, timeout, std::time::Duration::from_millis(20)) {
        Ok(held) => Ok(DirLock { _held: held }),
        Err(e @ flock::LockError::Timeout { .. }) => Err(EditError::LockTimeout {
            dir: dir.to_path_buf(),
            holder: e.holder(),
            secs: timeout.as_secs_f64(),
        }),
        Err(flock::LockError::Lock { source, .. }) => Err(io_err("lock", &path)(source.into())),
    }
}

fn read(path: &Path) -> Result<Option<Vec<u8>>, EditError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

/// Where an edit of a path lands.
#[derive(Debug)]
pub enum Resolved {
    /// The file itself, or the file a symlink leads to.
    File(PathBuf),
    /// A symlink whose target cannot be reached: reads as a missing file,
    /// cannot be written.
    Dangling {
        link: PathBuf,
        target: PathBuf,
        reason: std::io::Error,
    },
}

/// The file to operate on: a symlink is followed, so that the link stays a
/// link and its target gets the change.
pub fn resolve(path: &Path) -> Resolved {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => match fs::canonicalize(path) {
            Ok(p) => Resolved::File(p),
            Err(reason) => Resolved::Dangling {
                link: path.to_path_buf(),
                target: fs::read_link(path).unwrap_or_default(),
                reason,
            },
        },
        _ => Resolved::File(fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())),
    }
}

/// The path an edit of `path` reads: the symlink's target, or `path`.
pub fn resolved_path(path: &Path) -> PathBuf {
    match resolve(path) {
        Resolved::File(p) => p,
        Resolved::Dangling { link, .. } => link,
    }
}

pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".bak");
    PathBuf::from(name)
}

/// Writes `content` (the file's current bytes) to `<path>.bak`, with the
/// file's owner, group, mode and extended attributes, unless that exists.
fn backup(path: &Path, content: &[u8]) -> Result<Option<PathBuf>, EditError> {
    let bak = backup_path(path);
    if fs::symlink_metadata(&bak).is_ok() {
        return Ok(None);
    }
    atomic_file::stage_like(&bak, content, path)
        .and_then(|s| s.commit())
        .map_err(|e| EditError::Io {
            action: "back up",
            path: path.to_path_buf(),
            source: std::io::Error::new(e.kind(), format!("to {}: {e}", bak.display())),
        })?;
    Ok(Some(bak))
}

const FS_IMMUTABLE_FL: libc::c_long = 0x10;
const FS_APPEND_FL: libc::c_long = 0x20;

/// Refuses, before anything is written, a file that cannot be replaced or
/// removed (or a directory in which nothing can be created): immutable or
/// append-only, on a read-only mount, or (a file) a mount point.
/// Filesystems without inode flags or statx attributes pass.
fn check_replaceable(path: &Path, is_dir: bool) -> Result<(), EditError> {
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    if let Some(flags) = crate::sys::inode_flags(&f) {
        if flags & FS_IMMUTABLE_FL != 0 {
            return Err(EditError::Protected {
                path: path.to_path_buf(),
                what: "immutable",
                flag: 'i',
            });
        }
        if flags & FS_APPEND_FL != 0 {
            return Err(EditError::Protected {
                path: path.to_path_buf(),
                what: "append-only",
                flag: 'a',
            });
        }
    }
    if fstatvfs(&f).is_ok_and(|vfs| vfs.flags().contains(FsFlags::ST_RDONLY)) {
        return Err(EditError::ReadOnlyMount {
            path: path.to_path_buf(),
        });
    }
    if !is_dir && crate::sys::is_mount_root(&f) == Some(true) {
        return Err(EditError::MountPoint {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// How to take back one applied edit (the engine runner's undo, when a later
/// file of the same run fails).
#[derive(Debug)]
pub enum Undo {
    /// Nothing was changed (unchanged, or a dry run).
    Nothing,
    /// The file held `previous`: put it back and drop the backup this run made.
    Restore {
        path: PathBuf,
        previous: Vec<u8>,
        backup: Option<PathBuf>,
    },
    /// The file was created by this run: remove it.
    Remove(PathBuf),
}

impl Undo {
    /// Puts the file back as it was before the edit.
    pub fn run(self) -> Result<(), EditError> {
        match self {
            Undo::Nothing => Ok(()),
            Undo::Restore {
                path,
                previous,
                backup,
            } => {
                let staged = if path.exists() {
                    atomic_file::stage_like(&path, &previous, &path)
                } else {
                    atomic_file::stage(&path, &previous)
                };
                staged
                    .and_then(|s| s.commit())
                    .map_err(io_err("restore", &path))?;
                if let Some(b) = backup {
                    fs::remove_file(&b).map_err(io_err("remove the backup", &b))?;
                }
                Ok(())
            }
            Undo::Remove(path) => fs::remove_file(&path).map_err(io_err("remove", &path)),
        }
    }
}

/// [`apply_undoable`] for a single file, which needs no undo (the table tests).
#[cfg(test)]
pub fn apply<T>(
    path: &Path,
    opts: Options,
    plan: impl Fn(Option<&[u8]>) -> Result<(Change, T), ConfigureError>,
) -> Result<(FileOutcome, T), ConfigureError> {
    apply_undoable(path, opts, plan).map(|(outcome, info, _)| (outcome, info))
}

/// Reads `path` (`None` if missing), asks `plan` what to do, and does it:
/// the whole read-decide-write under an exclusive lock on the file's
/// directory. `plan` must be a pure function of the content: it runs again
/// if the directory had to be created first. In dry-run mode nothing is
/// created, locked or written; the would-be content is printed on stdout.
/// Returns, with the outcome, how to take the change back.
pub fn apply_undoable<T>(
    path: &Path,
    opts: Options,
    plan: impl Fn(Option<&[u8]>) -> Result<(Change, T), ConfigureError>,
) -> Result<(FileOutcome, T, Undo), ConfigureError> {
    let path = match resolve(path) {
        Resolved::File(p) => p,
        Resolved::Dangling {
            link,
            target,
            reason,
        } => {
            // Nothing to read; fine as long as nothing is to be written.
            let (change, info) = plan(None)?;
            return match change {
                Change::Unchanged | Change::Delete => {
                    Ok((FileOutcome::Unchanged, info, Undo::Nothing))
                }
                Change::Write(_) => Err(EditError::DanglingSymlink {
                    link,
                    target,
                    reason,
                }
                .into()),
            };
        }
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if opts.dry_run {
        let current = read(&path)?;
        let (change, info) = plan(current.as_deref())?;
        let outcome = match change {
            Change::Unchanged => FileOutcome::Unchanged,
            Change::Write(bytes) => {
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)
                    .and_then(|_| out.flush())
                    .map_err(io_err("write", Path::new("(stdout)")))?;
                FileOutcome::WouldWrite
            }
            Change::Delete if current.is_some() => FileOutcome::WouldDelete,
            Change::Delete => FileOutcome::Unchanged,
        };
        return Ok((outcome, info, Undo::Nothing));
    }
    let mut lock = if dir.is_dir() {
        Some(lock_dir(&dir)?)
    } else {
        None
    };
    let mut current = read(&path)?;
    let (mut change, mut info) = plan(current.as_deref())?;
    if lock.is_none() {
        if change == Change::Unchanged || change == Change::Delete {
            return Ok((FileOutcome::Unchanged, info, Undo::Nothing));
        }
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        lock = Some(lock_dir(&dir)?);
        current = read(&path)?;
        (change, info) = plan(current.as_deref())?;
    }
    let (outcome, undo) = match change {
        Change::Unchanged => (FileOutcome::Unchanged, Undo::Nothing),
        Change::Write(bytes) if current.as_deref() == Some(&bytes[..]) => {
            (FileOutcome::Unchanged, Undo::Nothing)
        }
        Change::Write(bytes) => {
            check_replaceable(&dir, true)?;
            check_replaceable(&path, false)?;
            // New content first, then the backup, then the rename: a
            // failure at any step takes back what the earlier ones made.
            let staged = if opts.private {
                atomic_file::stage_private(&path, &bytes)
            } else {
                atomic_file::stage(&path, &bytes)
            }
            .map_err(io_err("write", &path))?;
            let backup = match &current {
                Some(old) if opts.backup => backup(&path, old)?,
                _ => None,
            };
            if let Err(e) = staged.commit() {
                if let Some(b) = &backup {
                    let _ = fs::remove_file(b);
                }
                return Err(io_err("write", &path)(e).into());
            }
            let undo = match current {
                Some(previous) => Undo::Restore {
                    path: path.clone(),
                    previous,
                    backup: backup.clone(),
                },
                None => Undo::Remove(path.clone()),
            };
            (FileOutcome::Written { backup }, undo)
        }
        Change::Delete => match current {
            None => (FileOutcome::Unchanged, Undo::Nothing),
            Some(previous) => {
                check_replaceable(&dir, true)?;
                check_replaceable(&path, false)?;
                match fs::remove_file(&path) {
                    Ok(()) => (
                        FileOutcome::Deleted,
                        Undo::Restore {
                            path: path.clone(),
                            previous,
                            backup: None,
                        },
                    ),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        (FileOutcome::Unchanged, Undo::Nothing)
                    }
                    Err(e) => return Err(io_err("remove", &path)(e).into()),
                }
            }
        },
    };
    drop(lock);
    Ok((outcome, info, undo))
}

#[cfg(test)]
pub mod testutil {
    use std::path::Path;

    /// A fresh directory under the system temp dir, removed on drop.
    pub struct TempDir(tempfile::TempDir);

    impl TempDir {
        pub fn new(name: &str) -> TempDir {
            TempDir(
                tempfile::Builder::new()
                    .prefix(&format!("amd-ctk-rc-{name}-"))
                    .tempdir()
                    .unwrap(),
            )
        }

        pub fn path(&self) -> &Path {
            self.0.path()
        }

        /// File names in the directory, sorted.
        pub fn names(&self) -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(self.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::TempDir;
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const OPTS: Options = Options {
        dry_run: false,
        backup: true,
        private: false,
    };

    fn append(
        line: &'static str,
    ) -> impl Fn(Option<&[u8]>) -> Result<(Change, ()), ConfigureError> {
        move |cur| {
            let mut v = cur.unwrap_or_default().to_vec();
            v.extend_from_slice(line.as_bytes());
            Ok((Change::Write(v), ()))
        }
    }

    #[test]
    fn backup_once_keeps_mode_and_first_state() {
        let d = TempDir::new("backup");
        let f = d.path().join("daemon.json");
        fs::write(&f, "a\n").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        let (o, ()) = apply(&f, OPTS, append("b\n")).unwrap();
        assert_eq!(
            o,
            FileOutcome::Written {
                backup: Some(d.path().join("daemon.json.bak"))
            }
        );
        let (o, ()) = apply(&f, OPTS, append("c\n")).unwrap();
        assert_eq!(o, FileOutcome::Written { backup: None });
        assert_eq!(fs::read_to_string(&f).unwrap(), "a\nb\nc\n");
        assert_eq!(fs::read_to_string(backup_path(&f)).unwrap(), "a\n");
        for p in [&f, &backup_path(&f)] {
            assert_eq!(fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(d.names(), ["daemon.json", "daemon.json.bak"]);
    }

    #[test]
    fn missing_file_and_dir() {
        let d = TempDir::new("missing");
        let f = d.path().join("sub/dir/config.toml");
        // Nothing to do: nothing created.
        let (o, ()) = apply(&f, OPTS, |_| Ok((Change::Unchanged, ()))).unwrap();
        assert_eq!(o, FileOutcome::Unchanged);
        let (o, ()) = apply(&f, OPTS, |_| Ok((Change::Delete, ()))).unwrap();
        assert_eq!(o, FileOutcome::Unchanged);
        assert!(!d.path().join("sub").exists());
        let (o, ()) = apply(&f, OPTS, append("x\n")).unwrap();
        assert_eq!(o, FileOutcome::Written { backup: None });
        assert_eq!(fs::read_to_string(&f).unwrap(), "x\n");
        let (o, ()) = apply(&f, OPTS, |_| Ok((Change::Delete, ()))).unwrap();
        assert_eq!(o, FileOutcome::Deleted);
        assert!(!f.exists());
    }

    #[test]
    fn same_bytes_are_not_rewritten() {
        let d = TempDir::new("same");
        let f = d.path().join("x.json");
        fs::write(&f, "same").unwrap();
        let (o, ()) = apply(&f, OPTS, |_| Ok((Change::Write(b"same".to_vec()), ()))).unwrap();
        assert_eq!(o, FileOutcome::Unchanged);
        assert_eq!(d.names(), ["x.json"]);
    }

    #[test]
    fn dry_run_touches_nothing() {
        let d = TempDir::new("dry");
        let f = d.path().join("new/x.json");
        let opts = Options {
            dry_run: true,
            backup: true,
            private: false,
        };
        let (o, ()) = apply(&f, opts, append("")).unwrap();
        assert_eq!(o, FileOutcome::WouldWrite);
        assert!(d.names().is_empty());
    }

    #[test]
    fn symlink_target_is_edited() {
        let d = TempDir::new("link");
        let target = d.path().join("real.json");
        let link = d.path().join("daemon.json");
        fs::write(&target, "a\n").unwrap();
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        apply(&link, OPTS, append("b\n")).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&target).unwrap(), "a\nb\n");
        assert_eq!(d.names(), ["daemon.json", "real.json", "real.json.bak"]);
    }

    #[test]
    fn concurrent_edits_lose_nothing() {
        let d = TempDir::new("race");
        let f = d.path().join("log");
        fs::write(&f, "").unwrap();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let f = f.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let line: &'static str = Box::leak(format!("{i}\n").into_boxed_str());
                        apply(&f, OPTS, |cur| {
                            // Widen the race window between read and write.
                            std::thread::sleep(std::time::Duration::from_micros(200));
                            append(line)(cur)
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(fs::read_to_string(&f).unwrap().lines().count(), 160);
    }
}
