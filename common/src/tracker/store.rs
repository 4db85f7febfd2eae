//! The state file on disk ([`Store`]): the lock every operation holds for
//! its whole read-check-write, the read (missing: disabled), the atomic
//! write.
//!
//! Contract: the lock is an exclusive `flock` on `DIR/locks/FILE.lock`
//! (`flock::lock_file`), a 0600 file in a 0700 directory only root can
//! open, waited for at most [`LOCK_TIMEOUT`]; the default state directory
//! is made 0700; an older install's `FILE.lock` is removed and its state
//! made 0600 once the lock is held. Writes go to a 0600 temp file beside
//! the state (`O_NOFOLLOW`), fsynced, renamed over it; a failed write
//! removes the temp file.

use super::error::{TrackerError, LOCK_TIMEOUT};
use super::state::State;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the state lives unless the config file says otherwise.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/amd-container-toolkit/gpu-tracker.json";

/// The tracker's state file.
#[derive(Debug, Clone)]
pub(super) struct Store {
    path: PathBuf,
}

/// The held lock; released on drop (closing the descriptor).
pub(super) struct Lock {
    _guard: crate::flock::Held,
}

impl Store {
    pub(super) fn new(path: &Path) -> Store {
        Store {
            path: path.to_path_buf(),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TrackerError {
        let path = path.to_path_buf();
        move |source| TrackerError::Io {
            action,
            path,
            source,
        }
    }

    pub(super) fn lock(&self) -> Result<Lock, TrackerError> {
        let lock_path = crate::flock::lock_file(&self.path);
        if let Some(dir) = self.path.parent() {
            if dir == Path::new(DEFAULT_STATE_FILE).parent().unwrap_or(dir) {
                crate::flock::private_dir(dir).map_err(self.io("create", dir))?;
            }
        }
        let file = crate::flock::open_private(&lock_path).map_err(self.io("open", &lock_path))?;
        match crate::flock::lock_exclusive(file, &lock_path, LOCK_TIMEOUT, Duration::from_millis(5))
        {
            Ok(held) => {
                // An older install: its lock (anyone could hold it) goes,
                // its state becomes root's alone.
                crate::flock::remove_legacy_lock(&self.path);
                crate::flock::tighten_path(&self.path, 0o600)
                    .map_err(self.io("open", &self.path))?;
                Ok(Lock { _guard: held })
            }
            Err(crate::flock::LockError::Timeout { .. }) => Err(TrackerError::LockTimeout {
                path: self.path.clone(),
            }),
            Err(crate::flock::LockError::Lock { source, .. }) => {
                Err(self.io("lock", &lock_path)(source.into()))
            }
        }
    }

    /// The state on disk (missing: disabled). Call with the lock held.
    pub(super) fn read(&self) -> Result<State, TrackerError> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| TrackerError::Corrupt {
                path: self.path.clone(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(self.io("read", &self.path)(e)),
        }
    }

    /// Replaces the state atomically. Call with the lock held.
    pub(super) fn write(&self, state: &State) -> Result<(), TrackerError> {
        let tmp = PathBuf::from(format!(
            "{}.tmp-{}",
            self.path.display(),
            std::process::id()
        ));
        let mut bytes =
            serde_json::to_vec_pretty(state).map_err(|source| TrackerError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        bytes.push(b'\n');
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(self.io("write", &self.path))
    }
}
