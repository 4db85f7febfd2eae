//! Waiting for an exclusive `flock`, the one way every writer of shared state
//! here serialises: the engine config editors and the CDI refresh record lock
//! a directory (nothing is left behind), the GPU tracker its lock file.
//!
//! Contract: [`lock_exclusive`] never blocks in the kernel (LOCK_NB, polled),
//! gives up after `timeout` with the pids that hold the lock when the kernel
//! says (`/proc/locks`), and returns a guard that unlocks on drop.

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
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

/// The pids holding a `flock` on the file of `f`, from /proc/locks (lines
/// `N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE …`, device numbers in hex;
/// waiters are marked `->` and not counted).
fn holders(f: &File) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
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
}
