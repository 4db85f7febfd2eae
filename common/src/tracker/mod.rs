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
//!
//! Layout: [`Tracker`]'s operations here; the data and the rules on it in
//! `state` ([`State`], [`Mode`]), a holder in `holder` ([`Holder`]), the
//! file, its lock and its atomic write in `store`, errors in `error`.

mod error;
mod holder;
mod state;
mod store;

pub use error::TrackerError;
pub use holder::Holder;
pub use state::{GpuState, Mode, State};
pub use store::DEFAULT_STATE_FILE;

use crate::hardware::Inventory;
use state::fresh_gpus;
use std::path::Path;
use store::Store;

/// The tracker at one state file.
#[derive(Debug, Clone)]
pub struct Tracker {
    store: Store,
}

impl Tracker {
    pub fn new(state_file: &Path) -> Tracker {
        Tracker {
            store: Store::new(state_file),
        }
    }

    pub fn state_file(&self) -> &Path {
        self.store.path()
    }

    pub fn is_enabled(&self) -> Result<bool, TrackerError> {
        let _lock = self.store.lock()?;
        Ok(self.store.read()?.enabled)
    }

    /// Enables with a fresh state; `false` when it was enabled already (then
    /// nothing changes).
    pub fn enable(&self, inventory: &Inventory) -> Result<bool, TrackerError> {
        let _lock = self.store.lock()?;
        if self.store.read().is_ok_and(|s| s.enabled) {
            return Ok(false);
        }
        self.store.write(&State {
            enabled: true,
            gpus: fresh_gpus(inventory),
        })?;
        Ok(true)
    }

    /// Disables and forgets all state; `false` when it was disabled already.
    pub fn disable(&self) -> Result<bool, TrackerError> {
        let _lock = self.store.lock()?;
        let was = self.store.read().map_or(true, |s| s.enabled);
        self.store.write(&State::default())?;
        Ok(was)
    }

    /// All shared, no holders; enabled stays as it was. Works on corrupt or
    /// mismatched state (that is what it is for).
    pub fn reset(&self, inventory: &Inventory) -> Result<bool, TrackerError> {
        let _lock = self.store.lock()?;
        let enabled = self.store.read().is_ok_and(|s| s.enabled);
        let gpus = if enabled {
            fresh_gpus(inventory)
        } else {
            Vec::new()
        };
        self.store.write(&State { enabled, gpus })?;
        Ok(enabled)
    }

    /// Each GPU's mode and live holders; `None` when disabled. Dead holders
    /// are reclaimed (and the file rewritten) on the way.
    pub fn status(&self, inventory: &Inventory) -> Result<Option<Vec<GpuState>>, TrackerError> {
        let _lock = self.store.lock()?;
        let mut state = self.store.read()?;
        if !state.enabled {
            return Ok(None);
        }
        state.check_inventory(inventory)?;
        if state.reclaim() {
            self.store.write(&state)?;
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
        let _lock = self.store.lock()?;
        let mut state = self.store.read()?;
        if !state.enabled {
            return Err(TrackerError::Disabled);
        }
        state.check_inventory(inventory)?;
        state.reclaim();
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
        self.store.write(&state)
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
        let _lock = self.store.lock()?;
        let mut state = self.store.read()?;
        if !state.enabled {
            return Ok(());
        }
        state.check_inventory(inventory)?;
        state.reclaim();
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
        self.store.write(&state)
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
        let _lock = self.store.lock()?;
        let mut state = self.store.read()?;
        if !state.enabled {
            return Ok(false);
        }
        let mut held = false;
        for g in &mut state.gpus {
            let before = g.holders.len();
            g.holders.retain(|h| !gone(h));
            held |= g.holders.len() != before;
        }
        let reclaimed = state.reclaim();
        if held || reclaimed {
            self.store.write(&state)?;
        }
        Ok(held)
    }
}

#[cfg(test)]
mod tests;
