//! Podman's `precreate` stage: the spec editor. The whole config comes in on
//! stdin and goes out on stdout with the nodes in `linux.devices` and allow
//! rules in `linux.resources.devices`, and, for a non-root process user, the
//! nodes' host groups in `process.user.additionalGids`
//! ([`edit::grant_groups`]); no live injection is needed then.
//!
//! Contract: a config that asks for no GPU goes back byte for byte, without
//! the config file or libudev; input that is not JSON is an error.

use super::error::HookError;
use super::policy::{check_policy, load_config};
use crate::container_spec::{edit, view};
use crate::{tracker_hold, SWARM_PREFIX};
use amd_container_common::request::{find_assignment, find_request, Request};
use amd_container_common::resolve::resolve;
use std::io::Write;

/// Podman's `precreate`: the config on stdin, edited, on stdout.
pub fn run(config_path: &std::path::Path, input: Vec<u8>) -> Result<(), HookError> {
    // Fast path: not a GPU container. Input that is not even a config object
    // takes the full path below, which reports it.
    if let Ok(env) = serde_json::from_slice::<view::EnvOnly>(&input) {
        if !view::may_request(&env, SWARM_PREFIX) {
            return write_stdout(&input);
        }
    }
    let mut doc: serde_json::Value =
        serde_json::from_slice(&input).map_err(HookError::PrecreateInput)?;
    let config = load_config(config_path)?;
    let edits = {
        let env = view::DocView(&doc).env();
        match find_request(env.iter().copied(), &config.hook.swarm_resource) {
            None => None,
            Some(var) => {
                let request = Request::parse(var.name, var.value)?;
                if request.is_gpu() {
                    let privileged = view::DocView(&doc).privileged();
                    if request != Request::NoGpus {
                        check_policy(&config, config_path, &var, privileged)?;
                    }
                    let assignment =
                        find_assignment(env.iter().copied(), &config.hook.swarm_resource);
                    let unique_ids = tracker_hold::enabled(&config);
                    Some(resolve(&request, &var, assignment.as_ref(), unique_ids)?.edits)
                } else {
                    None
                }
            }
        }
    };
    match edits {
        // Not a GPU container: the config goes back byte for byte.
        None => write_stdout(&input),
        Some(edits) => {
            edit::add_devices(&mut doc, &edits);
            let (gids, refused) = edit::grant_groups(&mut doc, &edits, &config.devices.user_access);
            if !gids.is_empty() {
                log::debug!("added groups {gids:?} to process.user.additionalGids");
            }
            warn_refused(&refused);
            write_stdout(&serde_json::to_vec(&doc).map_err(HookError::PrecreateOutput)?)
        }
    }
}

/// Warns about nodes the container's non-root user cannot open and that no
/// group may be given for (their group is root's, or the group has no rw).
fn warn_refused(nodes: &[&amd_container_common::DeviceNode]) {
    for n in nodes {
        log::warn!(
            "{}: mode {:04o} uid {} gid {}: the container's user cannot open it and it is not \
             granted (never root's group, never wider than the host's mode bits); run the \
             container as root or change the host node's group",
            n.path.display(),
            n.mode,
            n.uid,
            n.gid
        );
    }
}

/// Writes and flushes: the process ends without the Rust runtime's exit
/// handling (src/bin/amd-container-hook/), which would otherwise flush stdout.
fn write_stdout(bytes: &[u8]) -> Result<(), HookError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(HookError::Stdout)
}
