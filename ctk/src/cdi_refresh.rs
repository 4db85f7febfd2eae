//! `amd-ctk cdi refresh`, and the record `cdi generate` keeps for it.
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

use crate::cdi_cmd::{render_spec, SpecFormat};
use crate::CliError;
use amd_container_common::atomic_file;
use amd_container_common::cdi::{self, GenerateOptions, NameStrategy};
use amd_container_common::config::Config;
use amd_container_common::flock;
use amd_container_common::hardware::{discover, require_gpus, Inventory, NoGpuError};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
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
struct State {
    version: u32,
    /// Absolute spec path → record.
    specs: BTreeMap<String, Record>,
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
fn digest(bytes: &[u8]) -> String {
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
    fn read(&self) -> Result<State, RefreshError> {
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

    fn write(&self, state: &State) -> Result<(), RefreshError> {
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

/// `STATE_DIR/cdi-previous/NAME`: the spec a refresh replaced last, NAME
/// being its path with `%` and `/` percent-encoded.
fn previous_copy(state_path: &Path, spec: &str) -> PathBuf {
    let name = spec
        .trim_start_matches('/')
        .replace('%', "%25")
        .replace('/', "%2F");
    state_path
        .parent()
        .unwrap_or(Path::new("."))
        .join("cdi-previous")
        .join(name)
}

/// The options `r` was generated with; `config` is the config file now
/// (what `cdi generate` would read: `[devices] user-access`, `[cdi] hooks`
/// and the hook's path and environment).
fn options_of(
    state_path: &Path,
    spec: &str,
    r: &Record,
    config: &Config,
    config_path: &Path,
) -> Result<GenerateOptions, RefreshError> {
    let user_access = &config.devices.user_access;
    let mut strategies = Vec::new();
    for s in &r.device_name_strategy {
        let parsed = s
            .parse::<NameStrategy>()
            .map_err(|_| RefreshError::Strategy {
                path: state_path.to_path_buf(),
                spec: spec.into(),
                found: s.clone(),
            })?;
        if !strategies.contains(&parsed) {
            strategies.push(parsed);
        }
    }
    Ok(GenerateOptions {
        vendor: r.vendor.clone(),
        class: r.class.clone(),
        strategies,
        user_access: if r.no_additional_gids {
            Vec::new()
        } else {
            user_access.to_vec()
        },
        hook: crate::cdi_cmd::hook_options(config, config_path, r.no_hooks || !config.cdi.hooks)
            .map_err(|e| RefreshError::Hook {
                spec: spec.into(),
                reason: e.to_string(),
            })?,
    })
}

/// What happened to one recorded spec.
enum RefreshOutcome {
    Refreshed(usize),
    Unchanged,
    Forgotten,
    LeftAlone(String),
    Failed(String),
}

fn refresh_one(
    state_path: &Path,
    spec: &str,
    record: &mut Record,
    inventory: &Inventory,
    config: &Config,
    config_path: &Path,
) -> RefreshOutcome {
    let path = Path::new(spec);
    let current = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return RefreshOutcome::Forgotten,
        Err(e) => {
            return RefreshOutcome::Failed(format!("cannot read {spec}: {e}; left as it was"))
        }
    };
    if digest(&current) != record.written {
        return RefreshOutcome::LeftAlone(format!(
            "{spec}: left alone: it changed since amd-ctk wrote it (edited, or written by \
             something else); `amd-ctk cdi generate --output {spec}` makes it ours again"
        ));
    }
    let options = match options_of(state_path, spec, record, config, config_path) {
        Ok(o) => o,
        Err(e) => return RefreshOutcome::Failed(format!("{e}; {spec} left as it was")),
    };
    let format = if record.format == "yaml" {
        SpecFormat::Yaml
    } else {
        SpecFormat::Json
    };
    let generated = match cdi::generate(inventory, &options) {
        Ok(s) => s,
        Err(e) => return RefreshOutcome::Failed(format!("{spec}: {e}; left as it was")),
    };
    let text = match render_spec(&generated, format) {
        Ok(t) => t,
        Err(e) => return RefreshOutcome::Failed(format!("{spec}: {e}; left as it was")),
    };
    if text.as_bytes() == current.as_slice() {
        return RefreshOutcome::Unchanged;
    }
    let backup = previous_copy(state_path, spec);
    if let Err(e) = atomic_file::write_atomic(&backup, &current) {
        return RefreshOutcome::Failed(format!(
            "cannot save {spec} to {} before replacing it: {e}; left as it was",
            backup.display()
        ));
    }
    if let Err(e) = atomic_file::write_atomic(path, text.as_bytes()) {
        return RefreshOutcome::Failed(format!("cannot write {spec}: {e}; left as it was"));
    }
    record.written = digest(text.as_bytes());
    RefreshOutcome::Refreshed(generated.devices.len())
}

/// `amd-ctk cdi refresh`.
pub fn run() -> Result<ExitCode, CliError> {
    let state_path = state_file();
    if !state_path.exists() {
        println!(
            "No CDI spec generated by amd-ctk is recorded ({}): nothing to refresh",
            state_path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let guard = lock(&state_path)?;
    let mut state = guard.read()?;
    if state.specs.is_empty() {
        println!("No CDI spec generated by amd-ctk is recorded: nothing to refresh");
        return Ok(ExitCode::SUCCESS);
    }
    let config_path = Config::default_path();
    let config = Config::load(&config_path)?;
    let inventory = discover()?;
    if let Err(e) = require_gpus(&inventory) {
        let kept: Vec<&str> = state.specs.keys().map(String::as_str).collect();
        return Err(RefreshError::NoGpu {
            source: e,
            kept: kept.join(", "),
        }
        .into());
    }
    let mut failed = false;
    let mut forget = Vec::new();
    for (spec, record) in state.specs.iter_mut() {
        match refresh_one(&state_path, spec, record, &inventory, &config, &config_path) {
            RefreshOutcome::Refreshed(n) => println!(
                "Refreshed CDI spec: {spec} ({n} devices, {} GPUs)",
                inventory.gpus.len()
            ),
            RefreshOutcome::Unchanged => println!("{spec}: up to date"),
            RefreshOutcome::Forgotten => {
                println!("{spec}: no longer exists; forgotten (it will not be created again)");
                forget.push(spec.clone());
            }
            RefreshOutcome::LeftAlone(msg) => eprintln!("amd-ctk: {msg}"),
            RefreshOutcome::Failed(msg) => {
                eprintln!("amd-ctk: {msg}");
                failed = true;
            }
        }
    }
    for spec in &forget {
        state.specs.remove(spec);
    }
    guard.write(&state)?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use amd_container_common::access::NodeKind;

    #[test]
    fn digest_is_fnv1a_64() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(digest(b""), "0xcbf29ce484222325");
        assert_eq!(digest(b"a"), "0xaf63dc4c8601ec8c");
    }

    #[test]
    fn previous_copy_names_are_distinct() {
        let s = Path::new("/var/lib/x/cdi-specs.json");
        assert_eq!(
            previous_copy(s, "/etc/cdi/amd.json"),
            Path::new("/var/lib/x/cdi-previous/etc%2Fcdi%2Famd.json")
        );
        assert_ne!(
            previous_copy(s, "/etc/cdi%2Famd.json"),
            previous_copy(s, "/etc/cdi/amd.json")
        );
    }

    /// A spec written with --no-additional-gids is refreshed without them
    /// (for the older engine it was written for); any other follows the
    /// config's `user-access`; a record from before the flag existed has none.
    #[test]
    fn refresh_keeps_no_additional_gids() {
        let record = |no_additional_gids| Record {
            format: "json".into(),
            vendor: "amd.com".into(),
            class: "gpu".into(),
            device_name_strategy: vec!["index".into()],
            no_additional_gids,
            no_hooks: no_additional_gids,
            written: digest(b""),
        };
        let config = Config::default();
        let state = Path::new("/s.json");
        let cp = Path::new(amd_container_common::config::DEFAULT_PATH);
        let o = options_of(state, "/etc/cdi/amd.json", &record(true), &config, cp).unwrap();
        assert!(o.user_access.is_empty());
        assert!(o.hook.is_none());
        let o = options_of(state, "/etc/cdi/amd.json", &record(false), &config, cp).unwrap();
        assert_eq!(o.user_access, NodeKind::default_user_access());
        assert_eq!(
            o.strategies,
            [NameStrategy::Index],
            "the record's strategy is kept"
        );
        assert_eq!(
            o.hook.map(|h| h.path),
            Some("/usr/bin/amd-container-hook".to_string())
        );
        let plain = Config {
            cdi: amd_container_common::config::CdiConfig { hooks: false },
            ..Config::default()
        };
        let o = options_of(state, "/etc/cdi/amd.json", &record(false), &plain, cp).unwrap();
        assert!(o.hook.is_none(), "[cdi] hooks = false");
        let old: Record = serde_json::from_str(
            r#"{"format": "json", "vendor": "amd.com", "class": "gpu",
                "device-name-strategy": ["index"], "written": "0x0"}"#,
        )
        .unwrap();
        assert!(!old.no_additional_gids);
        assert!(!old.no_hooks);
    }
}
