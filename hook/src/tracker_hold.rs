//! The hook's part in the GPU tracker (common's `tracker`): a GPU container
//! holds its GPUs from create until `poststop`; an exclusive GPU held by
//! another live container fails the create, naming that container. Nothing
//! happens while the tracker is disabled (no state file: the default).
//!
//! Contract: [`hold`] runs after the request resolved and before anything
//! is injected; if injection then fails the caller calls [`unhold`] with
//! what it returned, so a failed create holds nothing. [`release`] is the
//! `poststop` stage; holders deleted without it are reclaimed by the tracker
//! when their process is gone. A container is its id and bundle (the OCI
//! state's), the id alone being unique only within one runtime root.

use amd_container_common::config::Config;
use amd_container_common::tracker::{Holder, Tracker, TrackerError};
use amd_container_common::{Inventory, Selection};
use std::path::Path;

fn tracker(config: &Config) -> Tracker {
    Tracker::new(&config.gpu_tracker.state_file)
}

/// Is the tracker enabled (has a state file)?
pub fn enabled(config: &Config) -> bool {
    tracker(config).state_file().exists()
}

/// Records container `id` of `bundle` (init `pid`) on the selected GPUs, or
/// refuses. Returns the holder recorded (`None`: tracker disabled).
pub fn hold(
    config: &Config,
    id: &str,
    bundle: &Path,
    pid: i32,
    inventory: &Inventory,
    selection: &Selection,
) -> Result<Option<Holder>, TrackerError> {
    let t = tracker(config);
    if !t.state_file().exists() {
        return Ok(None);
    }
    // The init process exists during create; if it does not, there is
    // nothing to hold (the create fails on its own).
    let Some(holder) = Holder::for_process(id, &bundle.to_string_lossy(), pid) else {
        return Ok(None);
    };
    t.reserve(inventory, &selection.0, &holder)?;
    log::debug!("GPU tracker: {id} holds GPUs {:?}", selection.0);
    Ok(Some(holder))
}

/// Forgets `holder` (a create that failed after [`hold`]).
pub fn unhold(config: &Config, holder: &Holder) -> Result<bool, TrackerError> {
    tracker(config).release_holder(holder)
}

/// Forgets container `id` of `bundle` (poststop); whether it held any GPU.
pub fn release(config: &Config, id: &str, bundle: &Path) -> Result<bool, TrackerError> {
    let t = tracker(config);
    if !t.state_file().exists() {
        return Ok(false);
    }
    t.release(id, &bundle.to_string_lossy())
}
