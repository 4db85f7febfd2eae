//! The hook's part in the GPU tracker (common's `tracker`): a GPU container
//! holds its GPUs from create until `poststop`; an exclusive GPU held by
//! another live container fails the create, naming that container. Nothing
//! happens while the tracker is disabled (no state file: the default).
//!
//! Contract: [`hold`] runs after the request resolved and before anything
//! is injected; if injection then fails the caller calls [`release`], so a
//! failed create holds nothing. [`release`] is the `poststop` stage; holders
//! deleted without it are reclaimed by the tracker when their process is gone.

use amd_container_common::config::Config;
use amd_container_common::tracker::{Holder, Tracker, TrackerError};
use amd_container_common::{Inventory, Selection};

fn tracker(config: &Config) -> Tracker {
    Tracker::new(&config.gpu_tracker.state_file)
}

/// Is the tracker enabled (has a state file)?
pub fn enabled(config: &Config) -> bool {
    tracker(config).state_file().exists()
}

/// Records container `id` (init `pid`) on the selected GPUs, or refuses.
pub fn hold(
    config: &Config,
    id: &str,
    pid: i32,
    inventory: &Inventory,
    selection: &Selection,
) -> Result<(), TrackerError> {
    let t = tracker(config);
    if !t.state_file().exists() {
        return Ok(());
    }
    // The init process exists during create; if it does not, there is
    // nothing to hold (the create fails on its own).
    let Some(holder) = Holder::for_process(id, pid) else {
        return Ok(());
    };
    t.reserve(inventory, &selection.0, &holder)?;
    log::debug!("GPU tracker: {id} holds GPUs {:?}", selection.0);
    Ok(())
}

/// Forgets container `id` (poststop, or a create that failed after [`hold`]);
/// whether it held any GPU.
pub fn release(config: &Config, id: &str) -> Result<bool, TrackerError> {
    let t = tracker(config);
    if !t.state_file().exists() {
        return Ok(false);
    }
    t.release(id)
}
