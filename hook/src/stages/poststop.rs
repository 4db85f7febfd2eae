//! `poststop` without `--cdi`: the container is gone; its GPUs are free in
//! the GPU tracker.
//!
//! Contract: the log file is opened only when this container held GPUs:
//! poststop runs for every container, and one without GPUs leaves no trace.

use super::error::HookError;
use super::policy::load_config;
use crate::{container, logging, tracker_hold};

/// `poststop`: the container is gone; its GPUs are free in the tracker.
pub fn run(config_path: &std::path::Path, input: &[u8]) -> Result<(), HookError> {
    let state = container::read_state(input)?;
    release(config_path, &state)
}

/// Forgets `state`'s container in the GPU tracker (also a registration
/// for several stages seeing a stopped state).
pub fn release(
    config_path: &std::path::Path,
    state: &oci_spec::runtime::State,
) -> Result<(), HookError> {
    let config = load_config(config_path)?;
    // The log file is opened only when this container held GPUs: poststop
    // runs for every container, and one without GPUs leaves no trace.
    if tracker_hold::release(&config, state.id(), state.bundle())? {
        logging::open_file(state.id(), &config.hook.log_file, &config.hook.log_level);
        log::info!("GPU tracker: released the GPUs of {}", state.id());
    }
    Ok(())
}
