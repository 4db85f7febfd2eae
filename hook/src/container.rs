//! What the runtime tells the hook: the OCI state on stdin and the bundle's
//! config.json. The fast path reads only `process.env`.

use crate::spec::Spec;
use amd_container_common::request::{find_request, Request};
use oci_spec::runtime::State;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("cannot read the container state from stdin: {0}")]
    State(String),
    #[error("cannot read {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("the container state has no pid")]
    NoPid,
}

/// Just enough of config.json to decide whether this is a GPU container.
#[derive(Deserialize, Default)]
pub struct EnvOnly {
    #[serde(default)]
    process: Option<ProcessEnv>,
}

#[derive(Deserialize, Default)]
struct ProcessEnv {
    #[serde(default)]
    env: Option<Vec<String>>,
}

impl EnvOnly {
    pub fn env(&self) -> impl Iterator<Item = &str> {
        self.process
            .iter()
            .flat_map(|p| p.env.iter().flatten())
            .map(String::as_str)
    }
}

pub fn read_state(input: &[u8]) -> Result<State, ContainerError> {
    serde_json::from_slice(input).map_err(|e| ContainerError::State(e.to_string()))
}

pub fn config_path(state: &State) -> PathBuf {
    state.bundle().join("config.json")
}

pub fn read_config_bytes(path: &Path) -> Result<Vec<u8>, ContainerError> {
    std::fs::read(path).map_err(|e| ContainerError::Config {
        path: path.into(),
        reason: e.to_string(),
    })
}

pub fn parse_env_only(path: &Path, bytes: &[u8]) -> Result<EnvOnly, ContainerError> {
    serde_json::from_slice(bytes).map_err(|e| ContainerError::Config {
        path: path.into(),
        reason: e.to_string(),
    })
}

pub fn parse_spec(path: &Path, bytes: &[u8]) -> Result<Spec, ContainerError> {
    serde_json::from_slice(bytes).map_err(|e| ContainerError::Config {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// The container's root as an absolute path (`root.path` may be relative to
/// the bundle).
pub fn rootfs(spec: &Spec, bundle: &Path) -> PathBuf {
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_else(|| "rootfs".into());
    if root.is_absolute() {
        root
    } else {
        bundle.join(root)
    }
}

/// Cheap pre-check on the raw env, without the config file: could this be a
/// GPU container? `AMD_VISIBLE_DEVICES`, when present, decides (unset-like
/// values such as `void` — what Docker sets for `--gpus 0` — mean no);
/// otherwise any variable with the Swarm prefix might be the configured one.
/// A malformed value counts as a request, so that it is reported.
pub fn may_request(env: &EnvOnly, swarm_prefix: &str) -> bool {
    match find_request(env.env(), "") {
        Some(var) => Request::parse(var.name, var.value).map_or(true, |r| r.is_gpu()),
        None => env.env().any(|e| e.starts_with(swarm_prefix)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[&str]) -> EnvOnly {
        serde_json::from_value(serde_json::json!({"process": {"env": vars}})).unwrap()
    }

    #[test]
    fn pre_check() {
        let p = "DOCKER_RESOURCE_";
        assert!(!may_request(&env(&["PATH=/bin"]), p));
        assert!(!may_request(&env(&[]), p));
        assert!(!may_request(&EnvOnly::default(), p));
        assert!(!may_request(&env(&["AMD_VISIBLE_DEVICES=void"]), p));
        assert!(!may_request(&env(&["AMD_VISIBLE_DEVICES="]), p));
        // AMD_VISIBLE_DEVICES decides over a Swarm variable, as in resolution.
        assert!(!may_request(
            &env(&["DOCKER_RESOURCE_GPU=1", "AMD_VISIBLE_DEVICES=void"]),
            p
        ));
        assert!(may_request(&env(&["AMD_VISIBLE_DEVICES=0"]), p));
        assert!(may_request(&env(&["AMD_VISIBLE_DEVICES=none"]), p));
        assert!(
            may_request(&env(&["AMD_VISIBLE_DEVICES=0,,x"]), p),
            "errors get reported"
        );
        assert!(may_request(&env(&["DOCKER_RESOURCE_GPU=0x1"]), p));
    }
}
