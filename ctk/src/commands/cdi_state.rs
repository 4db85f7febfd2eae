//! The record `cdi generate` keeps for `cdi refresh` (the state file), its
//! lock and its errors; `cdi refresh` itself is cdi_refresh.
//!
//! Contract:
//! - `cdi generate --output PATH` (not `-`) records, in the state file
//!   (`/var/lib/amd-container-toolkit/cdi-specs.json`, or `$AMD_CTK_CDI_STATE`),
//!   the options the spec was written with (format, vendor, class, name
//!   strategies) and a digest of the bytes it wrote, keyed by PATH made
//!   absolute. The record is replaced atomically under an exclusive `flock`
//!   on `STATE_DIR/locks/cdi-specs.json.lock` (`flock::lock_file`), which the
//!   spec's write happens under too. Record and lock are 0600, `locks` and
//!   the default state directory 0700 (an older record is made 0600): a lock
//!   others can open, others can hold.
//! - `cdi refresh` regenerates each recorded spec with its recorded options:
//!   only when the file is still byte-for-byte what amd-ctk last wrote there
//!   (otherwise it is the admin's now: left byte-identical, the record kept,
//!   a note on stderr), only when the new content differs (an unchanged spec
//!   is not rewritten: same inode, same mtime), atomically, after saving the
//!   replaced spec under `STATE_DIR/cdi-previous/`. A recorded spec that no
//!   longer exists is forgotten, never created again. No record: nothing is
//!   written anywhere.
//! - Without GPUs (driver unloaded or reloading, every GPU gone), every spec
//!   is kept as it was and refresh exits 1 naming the case: a spec is never
//!   emptied or deleted behind the admin's back.
//! - SIGTERM is held off while the state lock is held (a refresh's whole
//!   run, milliseconds; generate's write), so a `systemctl restart` of the
//!   refresh unit (udev asks for one on every GPU event) lets the running
//!   refresh finish its writes first.

use super::cdi_render::SpecFormat;
use amd_container_common::atomic_file;
use amd_container_common::cdi::GenerateOptions;
use amd_container_common::flock;
use amd_container_common::hardware::NoGpuError;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `cdi generate` records what it wrote.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/amd-container-toolkit/cdi-specs.json";
/// Overrides [`DEFAULT_STATE_FILE`] (tests, or a host that keeps state elsewhere).
pub const STATE_ENV: &str = "AMD_CTK_CDI_STATE";
/// How long to wait for another amd-ctk holding the state lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);
const STATE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a CDI state file amd-ctk wrote ({source}); move it away to start afresh"
    )]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} has version {found}; this amd-ctk knows version {STATE_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("{path} records device name strategy {found:?} for {spec}; known: index, uuid, pci")]
    Strategy {
        path: PathBuf,
        spec: String,
        found: String,
    },
    #[error("{spec}: cannot write our hook into it: {reason}")]
    Hook { spec: String, reason: String },
    #[error("cannot lock {path} within {}s: another amd-ctk holds it", LOCK_TIMEOUT.as_secs())]
    LockTimeout { path: PathBuf },
    /// `cdi refresh` on a host whose GPUs are gone: the recorded specs are kept.
    #[error(
        "{source}; kept {kept} as it was (a GPU event with no GPU left is taken for a driver being \
         reloaded; `amd-ctk cdi generate` fails the same way, so nothing is rewritten)"
    )]
    NoGpu {
        #[source]
        source: NoGpuError,
        /// The recorded specs, comma-separated.
        kept: String,
    },
}

/// The options of `cdi generate` a record keeps besides [`GenerateOptions`]
/// (which holds what the config file said at the time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub no_additional_gids: bool,
    pub no_hooks: bool,
}

/// What `cdi generate` wrote to one path, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Record {
    pub format: String,
    pub vendor: String,
    pub class: String,
    pub device_name_strategy: Vec<String>,
    /// `--no-additional-gids`: no spec-level additionalGids whatever the
    /// config's `[devices] user-access` says (a spec for older engines).
    #[serde(default)]
    pub no_additional_gids: bool,
    /// `--no-hooks`: a plain spec whatever `[cdi] hooks` says. A record
    /// from before hooks existed reads as `false` (refresh adds the hook).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_hooks: bool,
    /// FNV-1a 64 of the bytes written, `0x…`: tells our file from an edited one.
    pub written: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    version: u32,
    /// Absolute spec path → record.
    pub specs: BTreeMap<String, Record>,
}

/// The state file in use.
pub fn state_file() -> PathBuf {
    std::env::var_os(STATE_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_STATE_FILE), PathBuf::from)
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RefreshError {
    let path = path.to_path_buf();
    move |source| RefreshError::Io {
        action,
        path,
        source,
    }
}

/// FNV-1a, 64 bits: stable across builds and Rust versions (unlike std's
/// hasher), enough to notice an edit.
pub fn digest(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("0x{h:016x}")
}

fn format_name(f: SpecFormat) -> &'static str {
    match f {
        SpecFormat::Json => "json",
        SpecFormat::Yaml => "yaml",
    }
}

/// An exclusive `flock` on the state file's lock file (root's alone), with
/// SIGTERM blocked until it is dropped: what runs under it is never torn.
pub struct StateLock {
    _held: flock::Held,
    path: PathBuf,
    /// The signal mask to restore (SIGTERM unblocked, unless it was before).
    old_mask: SigSet,
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // A pending SIGTERM is delivered now, after the write. Failing to
        // restore is impossible for a valid mask; nothing to report then.
        let _ = self.old_mask.thread_set_mask();
    }
}

/// Blocks SIGTERM (amd-ctk is single-threaded: the thread's mask is the
/// process's) and returns the mask to restore.
fn block_sigterm(dir: &Path) -> Result<SigSet, RefreshError> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .map_err(|e| io("block SIGTERM while writing", dir)(e.into()))
}

/// Locks the state of `path` (the state file), creating its directory.
pub fn lock(path: &Path) -> Result<StateLock, RefreshError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if Path::new(DEFAULT_STATE_FILE).parent() == Some(dir.as_path()) {
        flock::private_dir(&dir).map_err(io("create", &dir))?;
    } else {
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    }
    let lock_path = flock::lock_file(path);
    let f = flock::open_private(&lock_path).map_err(io("open", &lock_path))?;
    let held = match flock::lock_exclusive(f, &lock_path, LOCK_TIMEOUT, Duration::from_millis(20)) {
        Ok(held) => held,
        Err(flock::LockError::Timeout { .. }) => {
            return Err(RefreshError::LockTimeout { path: lock_path })
        }
        Err(flock::LockError::Lock { source, .. }) => {
            return Err(io("lock", &lock_path)(source.into()))
        }
    };
    // A record from before it was private: root's alone.
    flock::tighten_path(path, 0o600).map_err(io("open", path))?;
    Ok(StateLock {
        _held: held,
        path: path.to_path_buf(),
        old_mask: block_sigterm(&dir)?,
    })
}

impl StateLock {
    pub fn read(&self) -> Result<State, RefreshError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(io("read", &self.path)(e)),
        };
        let state: State =
            serde_json::from_slice(&bytes).map_err(|source| RefreshError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        if state.version != STATE_VERSION {
            return Err(RefreshError::Version {
                path: self.path.clone(),
                found: state.version,
            });
        }
        Ok(state)
    }

    pub fn write(&self, state: &State) -> Result<(), RefreshError> {
        let mut text =
            serde_json::to_string_pretty(state).map_err(|source| RefreshError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        text.push('\n');
        atomic_file::write_atomic(&self.path, text.as_bytes()).map_err(io("write", &self.path))?;
        flock::tighten_path(&self.path, 0o600).map_err(io("write", &self.path))
    }

    /// Records that `spec` now holds `bytes`, written with these options.
    pub fn record(
        &self,
        spec: &Path,
        format: SpecFormat,
        options: &GenerateOptions,
        flags: Flags,
        bytes: &[u8],
    ) -> Result<(), RefreshError> {
        let mut state = self.read()?;
        state.version = STATE_VERSION;
        state.specs.insert(
            spec.display().to_string(),
            Record {
                format: format_name(format).into(),
                vendor: options.vendor.clone(),
                class: options.class.clone(),
                device_name_strategy: options.strategies.iter().map(|s| s.name().into()).collect(),
                no_additional_gids: flags.no_additional_gids,
                no_hooks: flags.no_hooks,
                written: digest(bytes),
            },
        );
        self.write(&state)
    }
}

/// The absolute form of a spec path as given (symlinks are not resolved:
/// the record names what the admin named).
pub fn absolute(path: &Path) -> Result<PathBuf, RefreshError> {
    std::path::absolute(path).map_err(io("resolve", path))
}

/// `cdi generate`'s write: the spec and its record, under the state lock.
pub fn write_and_record(
    spec: &Path,
    format: SpecFormat,
    options: &GenerateOptions,
    flags: Flags,
    text: &str,
) -> Result<(), RefreshError> {
    let spec = absolute(spec)?;
    let state_path = state_file();
    // A user who cannot write the state (not root) still gets the spec;
    // only its refresh is lost, and said so.
    let not_recorded = |e: RefreshError| {
        log::warn!(
            "{} not recorded for `amd-ctk cdi refresh` (it will not follow GPU changes): {e}",
            spec.display()
        )
    };
    let guard = lock(&state_path).map_err(not_recorded).ok();
    atomic_file::write_atomic(&spec, text.as_bytes()).map_err(io("write", &spec))?;
    if let Some(guard) = guard {
        if let Err(e) = guard.record(&spec, format, options, flags, text.as_bytes()) {
            not_recorded(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_fnv1a_64() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(digest(b""), "0xcbf29ce484222325");
        assert_eq!(digest(b"a"), "0xaf63dc4c8601ec8c");
    }
}
