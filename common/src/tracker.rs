//! The GPU tracker: which containers hold which GPUs, and which GPUs are
//! `exclusive` (at most one holder) or `shared` (any number; the default).
//! Semantics and defaults follow upstream's `amd-ctk gpu-tracker`: disabled
//! until enabled; enabling starts from nothing (all shared, no holders);
//! disabling forgets everything; reset makes all shared and forgets holders
//! but keeps enabled/disabled; a GPU held by more than one container cannot
//! be made exclusive; state made for other GPUs (a partition mode changed) is
//! refused until reset.
//!
//! Contract: one JSON state file (default
//! `/var/lib/amd-container-toolkit/gpu-tracker.json`, `[gpu-tracker]
//! state-file`); every operation holds an exclusive `flock` on
//! `DIR/locks/FILE.lock` (`flock::lock_file`) for its whole
//! read-check-write, so concurrent hooks serialise; writes are atomic (temp
//! file, fsync, rename). A missing file means disabled. Only root can open
//! the state and its lock (both 0600, `locks` and the default directory
//! 0700): a lock any user could open is a lock any user could hold. An older
//! install's `FILE.lock` (0644) is removed and its state made 0600 by the
//! next operation.
//!
//! Holders are containers: their id and bundle (an id is unique only within
//! one runtime root; two roots, e.g. two containerd namespaces, have
//! different bundles), with the host pid of their init, its start time and
//! the boot id. One process is one holder: a second container of the same id
//! is another holder, never a replacement. A holder whose process is gone
//! (deleted without `poststop`, a crash, a reboot) is reclaimed by the next
//! operation; `poststop` forgets only the holders of its id and bundle whose
//! process is gone. State written before holders had a bundle is read; such
//! a holder is matched by id. Changes are all-or-nothing: a refused
//! reservation or mode change writes nothing.

use crate::hardware::Inventory;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the state lives unless the config file says otherwise.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/amd-container-toolkit/gpu-tracker.json";
/// How long an operation waits for the lock (upstream: 10 s).
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Shared,
    Exclusive,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Shared => "Shared",
            Mode::Exclusive => "Exclusive",
        })
    }
}

/// A container holding GPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub container: String,
    /// The container's bundle (absent in state written by older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// Host pid of the container's init when it was created.
    pub pid: i32,
    /// Its start time (`/proc/PID/stat` field 22), against pid reuse.
    pub start_time: u64,
    /// `/proc/sys/kernel/random/boot_id` then, against reboots.
    pub boot_id: String,
}

impl Holder {
    /// The holder for container `id` (bundle `bundle`) whose init is `pid`,
    /// as the host sees it now; `None` when that process does not exist.
    pub fn for_process(container: &str, bundle: &str, pid: i32) -> Option<Holder> {
        Some(Holder {
            container: container.to_string(),
            bundle: Some(bundle.to_string()),
            pid,
            start_time: start_time(pid)?,
            boot_id: boot_id(),
        })
    }

    /// Is the holder's process still the one that was recorded?
    pub fn alive(&self) -> bool {
        self.boot_id == boot_id() && start_time(self.pid) == Some(self.start_time)
    }

    /// The same process (the same container's hook run again)?
    pub fn same_process(&self, other: &Holder) -> bool {
        self.pid == other.pid
            && self.start_time == other.start_time
            && self.boot_id == other.boot_id
    }

    /// Is this the container `container` in `bundle`? A holder recorded
    /// without a bundle (older state) is matched by id.
    pub fn names(&self, container: &str, bundle: &str) -> bool {
        self.container == container && self.bundle.as_deref().is_none_or(|b| b == bundle)
    }
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Field 22 of `/proc/PID/stat` (after the parenthesised command name);
/// `None` for a process that is gone or a zombie (state Z or X: killed, not
/// yet reaped by whatever it was reparented to).
fn start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X") | None) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// One GPU's entry: its identity when the state was made, mode and holders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuState {
    pub index: usize,
    /// PCI address, with `#k` for the k-th compute partition.
    pub location: String,
    /// `0x…`, or absent without a KFD node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
    pub mode: Mode,
    #[serde(default)]
    pub holders: Vec<Holder>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub enabled: bool,
    #[serde(default)]
    pub gpus: Vec<GpuState>,
}

fn fresh_gpus(inventory: &Inventory) -> Vec<GpuState> {
    inventory
        .gpus
        .iter()
        .map(|g| GpuState {
            index: g.index,
            location: location(g),
            unique_id: g.unique_id_hex(),
            mode: Mode::Shared,
            holders: Vec::new(),
        })
        .collect()
}

fn location(g: &crate::Gpu) -> String {
    match g.partition {
        Some(k) => format!("{}#{k}", g.pci_address),
        None => g.pci_address.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("GPU tracker: cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("GPU tracker: {path} is not tracker state: {source}; run `amd-ctk gpu-tracker reset`")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("GPU tracker: {} is held by another process for more than {}s", crate::flock::lock_file(path).display(), LOCK_TIMEOUT.as_secs())]
    LockTimeout { path: PathBuf },
    #[error(
        "GPU tracker: the GPUs changed since its state was made ({detail}); stop the GPU \
         containers and run `amd-ctk gpu-tracker reset` (GPU info mismatch)"
    )]
    Mismatch { detail: String },
    #[error("GPU tracker is disabled: run `amd-ctk gpu-tracker enable` first")]
    Disabled,
    #[error("{0}")]
    InUse(String),
    #[error(
        "GPUs [{}] have not been made exclusive because more than one container is currently \
         using them ({}); nothing was changed",
        .gpus.iter().map(|(i, _)| i.to_string()).collect::<Vec<_>>().join(" "),
        .gpus.iter().map(|(i, h)| format!("GPU {i}: {}", h.join(", "))).collect::<Vec<_>>().join("; ")
    )]
    SharedByMany { gpus: Vec<(usize, Vec<String>)> },
}

/// The tracker at one state file.
#[derive(Debug, Clone)]
pub struct Tracker {
    path: PathBuf,
}

/// The held lock; released on drop (closing the descriptor).
struct Lock {
    _guard: crate::flock::Held,
}

impl Tracker {
    pub fn new(state_file: &Path) -> Tracker {
        Tracker {
            path: state_file.to_path_buf(),
        }
    }

    pub fn state_file(&self) -> &Path {
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

    fn lock(&self) -> Result<Lock, TrackerError> {
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
    fn read(&self) -> Result<State, TrackerError> {
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
    fn write(&self, state: &State) -> Result<(), TrackerError> {
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

    /// Checks the state was made for these GPUs.
    fn check_inventory(state: &State, inventory: &Inventory) -> Result<(), TrackerError> {
        let now = fresh_gpus(inventory);
        if now.len() != state.gpus.len() {
            return Err(TrackerError::Mismatch {
                detail: format!("{} GPUs then, {} now", state.gpus.len(), now.len()),
            });
        }
        for (was, is) in state.gpus.iter().zip(&now) {
            if was.location != is.location || was.unique_id != is.unique_id {
                return Err(TrackerError::Mismatch {
                    detail: format!(
                        "GPU {} was {} {}, is {} {}",
                        was.index,
                        was.location,
                        was.unique_id.as_deref().unwrap_or("-"),
                        is.location,
                        is.unique_id.as_deref().unwrap_or("-")
                    ),
                });
            }
        }
        Ok(())
    }

    /// Drops holders whose process is gone; true when one was dropped.
    fn reclaim(state: &mut State) -> bool {
        let mut changed = false;
        for g in &mut state.gpus {
            let before = g.holders.len();
            g.holders.retain(Holder::alive);
            changed |= g.holders.len() != before;
        }
        changed
    }

    pub fn is_enabled(&self) -> Result<bool, TrackerError> {
        let _lock = self.lock()?;
        Ok(self.read()?.enabled)
    }

    /// Enables with a fresh state; `false` when it was enabled already (then
    /// nothing changes).
    pub fn enable(&self, inventory: &Inventory) -> Result<bool, TrackerError> {
        let _lock = self.lock()?;
        if self.read().is_ok_and(|s| s.enabled) {
            return Ok(false);
        }
        self.write(&State {
            enabled: true,
            gpus: fresh_gpus(inventory),
        })?;
        Ok(true)
    }

    /// Disables and forgets all state; `false` when it was disabled already.
    pub fn disable(&self) -> Result<bool, TrackerError> {
        let _lock = self.lock()?;
        let was = self.read().map_or(true, |s| s.enabled);
        self.write(&State::default())?;
        Ok(was)
    }

    /// All shared, no holders; enabled stays as it was. Works on corrupt or
    /// mismatched state (that is what it is for).
    pub fn reset(&self, inventory: &Inventory) -> Result<bool, TrackerError> {
        let _lock = self.lock()?;
        let enabled = self.read().is_ok_and(|s| s.enabled);
        let gpus = if enabled {
            fresh_gpus(inventory)
        } else {
            Vec::new()
        };
        self.write(&State { enabled, gpus })?;
        Ok(enabled)
    }

    /// Each GPU's mode and live holders; `None` when disabled. Dead holders
    /// are reclaimed (and the file rewritten) on the way.
    pub fn status(&self, inventory: &Inventory) -> Result<Option<Vec<GpuState>>, TrackerError> {
        let _lock = self.lock()?;
        let mut state = self.read()?;
        if !state.enabled {
            return Ok(None);
        }
        Self::check_inventory(&state, inventory)?;
        if Self::reclaim(&mut state) {
            self.write(&state)?;
        }
        Ok(Some(state.gpus))
    }

    /// Sets the mode of GPUs `indices`, all or none: exclusive is refused
    /// for a GPU held by more than one live container.
    pub fn set_mode(
        &self,
        inventory: &Inventory,
        indices: &[usize],
        mode: Mode,
    ) -> Result<(), TrackerError> {
        let _lock = self.lock()?;
        let mut state = self.read()?;
        if !state.enabled {
            return Err(TrackerError::Disabled);
        }
        Self::check_inventory(&state, inventory)?;
        Self::reclaim(&mut state);
        if mode == Mode::Exclusive {
            let crowded: Vec<(usize, Vec<String>)> = indices
                .iter()
                .filter_map(|&i| state.gpus.get(i))
                .filter(|g| g.holders.len() > 1)
                .map(|g| {
                    (
                        g.index,
                        g.holders.iter().map(|h| h.container.clone()).collect(),
                    )
                })
                .collect();
            if !crowded.is_empty() {
                return Err(TrackerError::SharedByMany { gpus: crowded });
            }
        }
        for &i in indices {
            if let Some(g) = state.gpus.get_mut(i) {
                g.mode = mode;
            }
        }
        self.write(&state)
    }

    /// Records `holder` on GPUs `indices`, or refuses (writing nothing) when
    /// one of them is exclusive and held by another live container (another
    /// process, whatever its id). Nothing happens while disabled. An entry of
    /// the same process is replaced (the hook run twice for one container).
    pub fn reserve(
        &self,
        inventory: &Inventory,
        indices: &[usize],
        holder: &Holder,
    ) -> Result<(), TrackerError> {
        let _lock = self.lock()?;
        let mut state = self.read()?;
        if !state.enabled {
            return Ok(());
        }
        Self::check_inventory(&state, inventory)?;
        Self::reclaim(&mut state);
        let mut busy = Vec::new();
        for &i in indices {
            let Some(g) = state.gpus.get(i) else { continue };
            let others: Vec<&str> = g
                .holders
                .iter()
                .filter(|h| !h.same_process(holder))
                .map(|h| h.container.as_str())
                .collect();
            if g.mode == Mode::Exclusive && !others.is_empty() {
                busy.push(format!(
                    "GPU {i} is exclusive and held by container {}",
                    others.join(", ")
                ));
            }
        }
        if !busy.is_empty() {
            return Err(TrackerError::InUse(format!(
                "GPU tracker: refused for container {}: {}; it is free again once that \
                 container is deleted (amd-ctk gpu-tracker status)",
                holder.container,
                busy.join("; ")
            )));
        }
        for &i in indices {
            if let Some(g) = state.gpus.get_mut(i) {
                g.holders.retain(|h| !h.same_process(holder));
                g.holders.push(holder.clone());
            }
        }
        self.write(&state)
    }

    /// Forgets container `container` of `bundle` on every GPU (poststop):
    /// its holders whose process is gone; a live process of the same id and
    /// bundle is another container and keeps its GPUs. Returns whether it
    /// held anything.
    pub fn release(&self, container: &str, bundle: &str) -> Result<bool, TrackerError> {
        self.forget(|h| h.names(container, bundle) && !h.alive())
    }

    /// Forgets `holder` itself (a create that failed after reserving).
    pub fn release_holder(&self, holder: &Holder) -> Result<bool, TrackerError> {
        self.forget(|h| h.same_process(holder))
    }

    fn forget(&self, gone: impl Fn(&Holder) -> bool) -> Result<bool, TrackerError> {
        let _lock = self.lock()?;
        let mut state = self.read()?;
        if !state.enabled {
            return Ok(false);
        }
        let mut held = false;
        for g in &mut state.gpus {
            let before = g.holders.len();
            g.holders.retain(|h| !gone(h));
            held |= g.holders.len() != before;
        }
        let reclaimed = Self::reclaim(&mut state);
        if held || reclaimed {
            self.write(&state)?;
        }
        Ok(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::{Gpu, PciAddress};
    use std::sync::{Arc, Barrier};

    fn inventory(n: usize) -> Inventory {
        Inventory {
            kfd: None,
            gpus: (0..n)
                .map(|i| Gpu {
                    index: i,
                    pci_address: format!("0000:{:02x}:00.0", i + 3)
                        .parse::<PciAddress>()
                        .unwrap(),
                    partition: None,
                    unique_id: Some(0x1000 + i as u64),
                    card: None,
                    render: None,
                    compute_partition: None,
                    memory_partition: None,
                })
                .collect(),
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("amd-tracker-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d.join("state.json")
    }

    /// A live holder: a `sleep` of its own (one process is one holder),
    /// killed when this is dropped.
    struct Live(Holder, std::process::Child);

    impl std::ops::Deref for Live {
        type Target = Holder;
        fn deref(&self) -> &Holder {
            &self.0
        }
    }

    impl Drop for Live {
        fn drop(&mut self) {
            let _ = self.1.kill();
            let _ = self.1.wait();
        }
    }

    fn me(id: &str) -> Live {
        let child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        Live(
            Holder::for_process(id, "/b", child.id() as i32).unwrap(),
            child,
        )
    }

    #[test]
    fn upstream_defaults_and_lifecycle() {
        let inv = inventory(4);
        let t = Tracker::new(&tmp("life"));
        assert!(!t.is_enabled().unwrap(), "disabled until enabled");
        assert_eq!(t.status(&inv).unwrap(), None);
        assert!(matches!(
            t.set_mode(&inv, &[0], Mode::Exclusive),
            Err(TrackerError::Disabled)
        ));
        t.reserve(&inv, &[0], &me("a")).unwrap(); // disabled: not recorded
        assert!(t.enable(&inv).unwrap());
        assert!(!t.enable(&inv).unwrap(), "already enabled");
        let st = t.status(&inv).unwrap().unwrap();
        assert!(st
            .iter()
            .all(|g| g.mode == Mode::Shared && g.holders.is_empty()));
        let (a, b, c) = (me("a"), me("b"), me("c"));
        t.reserve(&inv, &[0, 1], &a).unwrap();
        t.reserve(&inv, &[1], &b).unwrap();
        // GPU 1 has two holders: it cannot be made exclusive; nothing changes.
        let e = t
            .set_mode(&inv, &[0, 1], Mode::Exclusive)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("GPUs [1] have not been made exclusive") && e.contains("a, b"),
            "{e}"
        );
        assert!(t
            .status(&inv)
            .unwrap()
            .unwrap()
            .iter()
            .all(|g| g.mode == Mode::Shared));
        t.set_mode(&inv, &[0], Mode::Exclusive).unwrap();
        let e = t.reserve(&inv, &[2, 0], &c).unwrap_err().to_string();
        assert!(
            e.contains("GPU 0 is exclusive and held by container a"),
            "{e}"
        );
        assert!(
            t.status(&inv).unwrap().unwrap()[2].holders.is_empty(),
            "all or nothing"
        );
        // The holder itself again (the hook run twice) is fine.
        t.reserve(&inv, &[0], &a).unwrap();
        assert!(t.release_holder(&a).unwrap());
        t.reserve(&inv, &[0], &c).unwrap();
        // Reset: all shared, no holders, still enabled.
        assert!(t.reset(&inv).unwrap());
        let st = t.status(&inv).unwrap().unwrap();
        assert!(st
            .iter()
            .all(|g| g.mode == Mode::Shared && g.holders.is_empty()));
        assert!(t.disable().unwrap());
        assert_eq!(t.status(&inv).unwrap(), None);
        assert!(t.enable(&inv).unwrap());
        assert!(t
            .status(&inv)
            .unwrap()
            .unwrap()
            .iter()
            .all(|g| g.holders.is_empty()));
    }

    #[test]
    fn dead_holders_are_reclaimed() {
        let inv = inventory(2);
        let t = Tracker::new(&tmp("dead"));
        t.enable(&inv).unwrap();
        t.set_mode(&inv, &[0], Mode::Exclusive).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let holder = Holder::for_process("gone", "/b", child.id() as i32).unwrap();
        t.reserve(&inv, &[0], &holder).unwrap();
        assert!(t.reserve(&inv, &[0], &me("next")).is_err());
        child.kill().unwrap();
        child.wait().unwrap();
        t.reserve(&inv, &[0], &me("next")).unwrap();
        // Another boot: the same pid and start time mean nothing.
        let rebooted = Holder {
            boot_id: "other-boot".into(),
            ..me("old").0.clone()
        };
        assert!(!rebooted.alive());
    }

    /// One id under two runtime roots (two bundles) is two containers: the
    /// second does not get the first's exclusive GPU, and its poststop does
    /// not free the first's; a holder from older state (no bundle) is
    /// matched by id.
    #[test]
    fn a_reused_id_is_another_holder() {
        let inv = inventory(2);
        let t = Tracker::new(&tmp("reuse"));
        t.enable(&inv).unwrap();
        t.set_mode(&inv, &[0], Mode::Exclusive).unwrap();
        let first = me("x");
        let mut second = me("x");
        second.0.bundle = Some("/other".into());
        t.reserve(&inv, &[0, 1], &first).unwrap();
        let e = t.reserve(&inv, &[0], &second).unwrap_err().to_string();
        assert!(e.contains("held by container x"), "{e}");
        t.reserve(&inv, &[1], &second).unwrap();
        // The second's poststop (its process gone): the first keeps GPU 1.
        drop(second);
        assert!(t.release("x", "/other").unwrap());
        let st = t.status(&inv).unwrap().unwrap();
        assert_eq!(st[1].holders, vec![first.0.clone()]);
        // Not while its process lives: poststop of the first's id and bundle
        // leaves a live one alone.
        assert!(!t.release("x", "/b").unwrap());
        // Older state: holders without a bundle are read and matched by id.
        let old = r#"{"enabled":true,"gpus":[{"index":0,"location":"0000:03:00.0",
            "unique_id":"0x1000","mode":"shared","holders":[{"container":"old","pid":1,
            "start_time":1,"boot_id":"b"}]},{"index":1,"location":"0000:04:00.0",
            "unique_id":"0x1001","mode":"shared"}]}"#;
        let state: State = serde_json::from_str(old).unwrap();
        assert!(state.gpus[0].holders[0].names("old", "/any/bundle"));
        assert!(!state.gpus[0].holders[0].names("new", "/any/bundle"));
    }

    #[test]
    fn changed_gpus_are_refused_until_reset() {
        let t = Tracker::new(&tmp("mismatch"));
        t.enable(&inventory(2)).unwrap();
        let e = t.status(&inventory(3)).unwrap_err().to_string();
        assert!(
            e.contains("2 GPUs then, 3 now") && e.contains("reset"),
            "{e}"
        );
        assert!(t.reserve(&inventory(3), &[0], &me("x")).is_err());
        t.reset(&inventory(3)).unwrap();
        assert_eq!(t.status(&inventory(3)).unwrap().unwrap().len(), 3);
        fs::write(t.state_file(), b"garbage").unwrap();
        assert!(matches!(
            t.status(&inventory(3)),
            Err(TrackerError::Corrupt { .. })
        ));
        t.reset(&inventory(3)).unwrap();
    }

    /// 50 concurrent reservations of one exclusive GPU (separate lock
    /// descriptors, as separate hook processes have): exactly one wins.
    #[test]
    fn fifty_concurrent_reservations_one_exclusive_winner() {
        let inv = Arc::new(inventory(1));
        let path = tmp("race");
        let t = Tracker::new(&path);
        t.enable(&inv).unwrap();
        t.set_mode(&inv, &[0], Mode::Exclusive).unwrap();
        let barrier = Arc::new(Barrier::new(50));
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let (inv, barrier, path) = (Arc::clone(&inv), Arc::clone(&barrier), path.clone());
                std::thread::spawn(move || {
                    // Each its own live process, alive until all are done.
                    let holder = me(&format!("c{i}"));
                    barrier.wait();
                    let ok = Tracker::new(&path).reserve(&inv, &[0], &holder).is_ok();
                    (ok, holder)
                })
            })
            .collect();
        let results: Vec<(bool, Live)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners = results.iter().filter(|(ok, _)| *ok).count();
        assert_eq!(winners, 1);
        assert_eq!(t.status(&inv).unwrap().unwrap()[0].holders.len(), 1);
    }
}
