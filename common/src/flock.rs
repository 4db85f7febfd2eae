//! Waiting for an exclusive `flock`, the one way every writer of shared state
//! here serialises: the engine config editors and the CDI refresh record lock
//! a directory (nothing is left behind), the GPU tracker its lock file.
//!
//! Contract: [`lock_exclusive`] never blocks in the kernel (LOCK_NB, polled),
//! gives up after `timeout` with the pids that hold the lock when the kernel
//! says (`/proc/locks`), and returns a guard that unlocks on drop.
//!
//! A `flock` needs only an open descriptor, read-only included: whoever can
//! open the file can hold the lock. So every lock here is a file only its
//! owner can open ([`open_private`]: mode 0600, never a symlink, in a
//! directory of the caller's own with mode 0700), never a directory or a
//! file others can read. A descriptor someone opened before a file became
//! private keeps working, so a lock is never made private in place: it
//! lives in a private directory from the start ([`lock_file`]).

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A held lock; released when dropped.
pub type Held = Flock<File>;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot lock {}: {source}", path.display())]
    Lock { path: PathBuf, source: Errno },
    /// Still held by someone else after the timeout.
    #[error("cannot lock {} within {}s: {} holds it", path.display(), waited.as_secs_f64(), holder_text(holders))]
    Timeout {
        path: PathBuf,
        waited: Duration,
        /// The pids /proc/locks names as holders (empty: unknown).
        holders: Vec<u32>,
    },
}

fn holder_text(holders: &[u32]) -> String {
    match holders {
        [] => "another process".into(),
        pids => {
            let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
            format!("process {}", pids.join(", "))
        }
    }
}

impl LockError {
    /// "process 123, 456" or "another process".
    pub fn holder(&self) -> String {
        match self {
            LockError::Timeout { holders, .. } => holder_text(holders),
            LockError::Lock { .. } => "another process".into(),
        }
    }
}

/// Takes an exclusive `flock` on `file` (opened from `path`), polling every
/// `poll` until `timeout` has passed.
pub fn lock_exclusive(
    file: File,
    path: &Path,
    timeout: Duration,
    poll: Duration,
) -> Result<Held, LockError> {
    let start = Instant::now();
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(held) => return Ok(held),
            Err((f, Errno::EINTR)) => file = f,
            Err((f, Errno::EWOULDBLOCK)) if start.elapsed() < timeout => {
                file = f;
                std::thread::sleep(poll);
            }
            Err((f, Errno::EWOULDBLOCK)) => {
                return Err(LockError::Timeout {
                    path: path.to_path_buf(),
                    waited: timeout,
                    holders: holders(&f),
                })
            }
            Err((_, source)) => {
                return Err(LockError::Lock {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// The lock of the state file `state`: `DIR/locks/NAME.lock` beside it.
pub fn lock_file(state: &Path) -> PathBuf {
    let dir = match state.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = state.file_name().unwrap_or_default().to_string_lossy();
    dir.join("locks").join(format!("{name}.lock"))
}

/// Opens the lock file `path` for [`lock_exclusive`], creating it with mode
/// 0600 in its directory, which must be the caller's alone
/// ([`owned_private_dir`]). Refused: a symlink, a file that is not regular
/// or not owned by the caller.
pub fn open_private(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        owned_private_dir(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    tighten_file(&file, 0o600)?;
    Ok(file)
}

/// Checks that `file` is a regular file owned by the caller and takes away
/// every permission beyond `mode` (at most 0700's bits are kept).
pub fn tighten_file(file: &File, mode: u32) -> std::io::Result<()> {
    let meta = file.metadata()?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.file_type().is_file() || meta.uid() != me {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "not a regular file owned by uid {me} (uid {}, mode {:o}); refusing to use it",
                meta.uid(),
                meta.mode()
            ),
        ));
    }
    if meta.mode() & 0o7777 & !mode != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(meta.mode() & mode))?;
    }
    Ok(())
}

/// Makes the existing file `path` (not followed if a symlink) private to
/// its owner like [`tighten_file`]; a missing file is fine.
pub fn tighten_path(path: &Path, mode: u32) -> std::io::Result<()> {
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => tighten_file(&f, mode),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the directory `dir` (and its parents) with mode 0700; an existing
/// one of ours that others may enter is made 0700. Only for directories
/// that are the toolkit's own (its state directory), never an admin's.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw() => {
            if m.mode() & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(m.mode() & 0o700))?;
            }
            Ok(())
        }
        Ok(_) => Ok(()),
    }
}

/// Removes `STATE.lock`, the lock file of versions before [`lock_file`],
/// when it is a regular file of ours; anything else there is left alone.
pub fn remove_legacy_lock(state: &Path) {
    let old = PathBuf::from(format!("{}.lock", state.display()));
    if let Ok(m) = std::fs::symlink_metadata(&old) {
        if m.is_file() && m.uid() == nix::unistd::geteuid().as_raw() {
            let _ = std::fs::remove_file(&old);
        }
    }
}

/// [`private_dir`] for a directory that must be the caller's alone (where
/// its locks live): one owned by anyone else is refused.
pub fn owned_private_dir(dir: &Path) -> std::io::Result<()> {
    private_dir(dir)?;
    let m = std::fs::symlink_metadata(dir)?;
    let me = nix::unistd::geteuid().as_raw();
    if !m.is_dir() || m.uid() != me {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "not a directory owned by uid {me} (uid {}, mode {:o}); refusing to lock in it",
                m.uid(),
                m.mode()
            ),
        ));
    }
    Ok(())
}

/// The pids holding a `flock` on the file of `f`, from /proc/locks (lines
/// `N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE …`, device numbers in hex;
/// waiters are marked `->` and not counted).
fn holders(f: &File) -> Vec<u32> {
    let Ok(meta) = f.metadata() else {
        return Vec::new();
    };
    let id = format!(
        "{:02x}:{:02x}:{}",
        libc::major(meta.dev()),
        libc::minor(meta.dev()),
        meta.ino()
    );
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    locks
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [_, "FLOCK", _, _, pid, dev_ino, ..] if *dev_ino == id => pid.parse().ok(),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_times_out_naming_the_holder_pid() {
        let dir = tempfile::tempdir().unwrap();
        let open = || File::open(dir.path()).unwrap();
        let held = lock_exclusive(open(), dir.path(), Duration::ZERO, Duration::ZERO).unwrap();
        // flock locks are per open file description: a second open contends
        // even within one process.
        let err = lock_exclusive(
            open(),
            dir.path(),
            Duration::from_millis(30),
            Duration::from_millis(5),
        )
        .unwrap_err();
        assert_eq!(err.holder(), format!("process {}", std::process::id()));
        assert!(err.to_string().contains("within 0.03s"), "{err}");
        drop(held);
        lock_exclusive(open(), dir.path(), Duration::ZERO, Duration::ZERO).unwrap();
    }

    #[test]
    fn lock_files_are_private_and_loose_ones_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/dir/x.lock");
        open_private(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        open_private(&path).unwrap();
        assert_eq!(mode(&path), 0o600, "an old 0644 lock is tightened");
        std::fs::set_permissions(
            path.parent().unwrap(),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        open_private(&path).unwrap();
        assert_eq!(mode(path.parent().unwrap()), 0o700, "and its directory");
        assert_eq!(
            lock_file(Path::new("/var/lib/x/state.json")),
            Path::new("/var/lib/x/locks/state.json.lock")
        );
        let link = dir.path().join("link.lock");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(open_private(&link).is_err(), "a symlink is refused");
    }
}
