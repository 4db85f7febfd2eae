//! What the runtime tells the hook: the OCI state on stdin and the bundle's
//! config.json. The fast path reads only `process.env`.

use oci_spec::runtime::{Spec, State};
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

/// Cheap pre-check on the raw env: could any entry be a request? Lets the hook
/// skip loading its own config file on the common, non-GPU path.
pub fn may_request(env: &EnvOnly, swarm_prefix: &str) -> bool {
    env.env()
        .any(|e| e.starts_with("AMD_VISIBLE_DEVICES=") || e.starts_with(swarm_prefix))
}
