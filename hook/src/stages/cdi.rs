//! `amd-container-hook --cdi createRuntime | poststop`: the hook as a CDI
//! spec written by `amd-ctk cdi generate` registers it. The engine has
//! already created the nodes and the device cgroup rules from the spec; the
//! hook creates none. It finds which of our GPUs the container got from the
//! container's own `linux.devices` (by major:minor against the host's GPUs),
//! never from arguments or environment a user could set; holds them in the
//! GPU tracker as the environment path does (an exclusive GPU held by another
//! live container fails the create, naming it); logs one line; releases at
//! `poststop`.
//!
//! Contract: a container whose `linux.devices` has no DRM node (major 226)
//! costs a read of stdin and `config.json`, without the config file, the log
//! or libudev. With DRM nodes but no GPU on the host (driver not loaded, no
//! GPU), the create fails with the reason. DRM nodes that are none of our
//! GPUs' (another vendor's): nothing is done.

use crate::container_spec::view::char_devices;
use crate::{container, logging, tracker_hold};
use amd_container_common::config::Config;
use amd_container_common::hardware::{require_gpus, scan, Detail, DeviceNode, NoGpuError};
use amd_container_common::Selection;

/// The major of DRM nodes (`/dev/dri/card*`, `renderD*`).
const DRM_MAJOR: i64 = 226;

#[derive(Debug, thiserror::Error)]
pub enum CdiStageError {
    #[error(transparent)]
    Container(#[from] container::ContainerError),
    #[error(transparent)]
    Config(#[from] amd_container_common::config::ConfigError),
    #[error(transparent)]
    Discovery(#[from] amd_container_common::hardware::DiscoveryError),
    #[error("CDI device amd.com/gpu: {0}")]
    NoGpu(#[from] NoGpuError),
    #[error(transparent)]
    Tracker(#[from] amd_container_common::tracker::TrackerError),
}

fn given(node: &Option<DeviceNode>, devices: &[(i64, i64)]) -> bool {
    node.as_ref()
        .is_some_and(|n| devices.contains(&(i64::from(n.major), i64::from(n.minor))))
}

/// `createRuntime` (or a registration's `poststop`, told by the state).
pub fn run(config_path: &std::path::Path, input: &[u8]) -> Result<(), CdiStageError> {
    let state = container::read_state(input)?;
    if container::is_stopped(&state) {
        return release(config_path, &state);
    }
    let spec_path = container::config_path(&state);
    let bytes = container::read_config_bytes(&spec_path)?;
    let devices = char_devices(&bytes);
    // Fast path: no DRM node, none of our GPUs.
    if !devices.iter().any(|(major, _)| *major == DRM_MAJOR) {
        return Ok(());
    }
    let config = Config::load(config_path)?;
    let detail = Detail {
        unique_ids: tracker_hold::enabled(&config),
        partition_modes: false,
    };
    let found = scan(detail)?;
    if let Err(e) = require_gpus(found.gpus()) {
        logging::open_file(state.id(), &config.hook.log_file, &config.hook.log_level);
        return Err(e.into());
    }
    let inventory = found.with_all_nodes()?;
    let selection = Selection(
        inventory
            .gpus
            .iter()
            .filter(|g| given(&g.card, &devices) || given(&g.render, &devices))
            .map(|g| g.index)
            .collect(),
    );
    if selection.0.is_empty() {
        return Ok(());
    }
    logging::open_file(state.id(), &config.hook.log_file, &config.hook.log_level);
    let pid = state.pid().ok_or(container::ContainerError::NoPid)?;
    tracker_hold::hold(
        &config,
        state.id(),
        state.bundle(),
        pid,
        &inventory,
        &selection,
    )?;
    let nodes: Vec<String> = selection
        .0
        .iter()
        .filter_map(|&i| inventory.gpus.get(i))
        .flat_map(|g| g.nodes())
        .map(|n| n.path.display().to_string())
        .collect();
    log::info!(
        "CDI: has GPU {} ({}){}",
        selection
            .0
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
        nodes.join(" "),
        if tracker_hold::enabled(&config) {
            ", held in the GPU tracker"
        } else {
            ""
        }
    );
    Ok(())
}

/// `poststop`: the container's GPUs are free in the tracker.
pub fn release(
    config_path: &std::path::Path,
    state: &oci_spec::runtime::State,
) -> Result<(), CdiStageError> {
    let config = Config::load(config_path)?;
    if tracker_hold::release(&config, state.id(), state.bundle())? {
        logging::open_file(state.id(), &config.hook.log_file, &config.hook.log_level);
        log::info!(
            "GPU tracker: released the GPUs of {} at poststop",
            state.id()
        );
    }
    Ok(())
}
