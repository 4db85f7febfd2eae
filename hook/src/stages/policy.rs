//! The admin's config as the stages read it: loading it (with the Swarm
//! setting checked) and the policy on unprivileged requests.
//!
//! Contract: a Swarm setting that is not a `DOCKER_RESOURCE_` name or prefix
//! is an error naming it; an unprivileged container's request is refused,
//! naming the variable and the config file, unless the config allows it.

use super::error::HookError;
use crate::SWARM_PREFIX;
use amd_container_common::config::Config;

/// Loads the config file and checks `hook.swarm-resource`.
pub fn load_config(path: &std::path::Path) -> Result<Config, HookError> {
    let config = Config::load(path)?;
    let swarm = &config.hook.swarm_resource;
    let star_inside = swarm.trim_end_matches('*').contains('*') || swarm.ends_with("**");
    if !swarm.is_empty() && (!swarm.starts_with(SWARM_PREFIX) || star_inside) {
        return Err(HookError::SwarmVariable(swarm.clone()));
    }
    Ok(config)
}

/// The admin's policy ([hook] allow-unprivileged-requests): may a container
/// with this bounding set get GPUs?
pub fn check_policy(
    config: &Config,
    config_path: &std::path::Path,
    var: &amd_container_common::request::RequestVar,
    privileged: bool,
) -> Result<(), HookError> {
    if config.hook.allow_unprivileged_requests || privileged {
        return Ok(());
    }
    Err(HookError::Unprivileged {
        name: var.name.to_string(),
        value: var.value.to_string(),
        config: config_path.to_path_buf(),
    })
}
