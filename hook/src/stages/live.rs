//! `prestart` / `createRuntime` without `--cdi`: live injection. The
//! container's request is resolved ([`resolve`]) and its nodes are created
//! in the running container with its device cgroup opened ([`inject`]); the
//! GPUs are held in the GPU tracker meanwhile, and one line is logged.
//!
//! Contract: a container that asks for no GPU costs a read of stdin and of
//! `config.json`, without the config file, the log file or libudev; once a
//! request is seen the log file records what happens, a rejected value
//! included; a failed injection holds nothing in the tracker.

use super::error::HookError;
use super::policy::{check_policy, load_config};
use super::poststop;
use crate::container_spec::view;
use crate::{container, inject, logging, tracker_hold, SWARM_PREFIX};
use amd_container_common::request::{find_assignment, find_request, Request};
use amd_container_common::resolve::{resolve, Resolved};

/// `prestart` / `createRuntime`: resolve the request and inject the nodes
/// into the running container.
pub fn run(config_path: &std::path::Path, input: &[u8]) -> Result<(), HookError> {
    let state = container::read_state(input)?;
    // A registration for several stages (Podman, CRI-O) also runs at
    // poststop with this argv: the state's status tells.
    if container::is_stopped(&state) {
        return poststop::release(config_path, &state);
    }
    let spec_path = container::config_path(&state);
    let bytes = container::read_config_bytes(&spec_path)?;
    let env = container::parse_env_only(&spec_path, &bytes)?;
    // Fast path, taken by every non-GPU container on the host.
    if !view::may_request(&env, SWARM_PREFIX) {
        return Ok(());
    }
    let config = load_config(config_path)?;
    let Some(var) = find_request(env.env(), &config.hook.swarm_resource) else {
        return Ok(());
    };
    // A set, non-void variable: from here on the log file records what
    // happens, a rejected value included.
    let parsed = Request::parse(var.name, var.value);
    if parsed.as_ref().map_or(true, Request::is_gpu) {
        logging::open_file(state.id(), &config.hook.log_file, &config.hook.log_level);
    }
    let request = parsed?;
    if !request.is_gpu() {
        return Ok(());
    }
    log::debug!("request {}={}", var.name, var.value);
    if request == Request::NoGpus {
        log::info!("{}={}: no GPU to give", var.name, var.value);
        return Ok(());
    }
    let spec = container::parse_spec(&spec_path, &bytes)?;
    check_policy(&config, config_path, &var, spec.privileged())?;
    let assignment = find_assignment(env.env(), &config.hook.swarm_resource);
    let Resolved {
        inventory,
        selection,
        edits,
    } = resolve(
        &request,
        &var,
        assignment.as_ref(),
        tracker_hold::enabled(&config),
    )?;
    if edits.is_empty() {
        log::info!("{}={}: no GPU to give", var.name, var.value);
        return Ok(());
    }
    let pid = state.pid().ok_or(container::ContainerError::NoPid)?;
    let rootfs = container::rootfs(&spec, state.bundle())?;
    let held = tracker_hold::hold(
        &config,
        state.id(),
        state.bundle(),
        pid,
        &inventory,
        &selection,
    )?;
    let outcome = match inject::inject(pid, &rootfs, &spec, &edits, &config.devices.user_access) {
        Ok(o) => o,
        Err(e) => {
            if let Some(Err(r)) = held.map(|h| tracker_hold::unhold(&config, &h)) {
                log::error!("{r}");
            }
            return Err(e.into());
        }
    };
    let paths: Vec<String> = edits
        .device_nodes
        .iter()
        .map(|n| n.path.display().to_string())
        .collect();
    let regrouped = if outcome.regrouped.is_empty() {
        String::new()
    } else {
        format!(
            ", group {} for the container's user: {}",
            spec.user().gid,
            outcome.regrouped.join(" ")
        )
    };
    log::info!(
        "{}={}: gave {} ({} created{}{regrouped}, {})",
        var.name,
        var.value,
        paths.join(" "),
        outcome.created,
        if outcome.bind_mounted {
            ", bind-mounted for a user namespace"
        } else {
            ""
        },
        outcome.cgroup
    );
    Ok(())
}
