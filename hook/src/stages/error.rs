//! The one error of `amd-container-hook`'s stages: each variant names the
//! value at fault and keeps its cause; [`super::run`] reports it once.

use crate::{container, inject, SWARM_PREFIX, USAGE};
use amd_container_common::config::ConfigError;
use amd_container_common::request::RequestError;
use amd_container_common::resolve::ResolveError;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{USAGE}")]
    Usage,
    #[error(transparent)]
    Container(#[from] container::ContainerError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "hook.swarm-resource {0:?} must start with {SWARM_PREFIX} and may only end in \"*\" \
         (a name such as DOCKER_RESOURCE_AMD_GPU, or a prefix such as DOCKER_RESOURCE_*)"
    )]
    SwarmVariable(String),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Inject(#[from] inject::InjectError),
    #[error(transparent)]
    Tracker(#[from] amd_container_common::tracker::TrackerError),
    #[error(transparent)]
    Cdi(#[from] super::cdi::CdiStageError),
    #[error("cannot read stdin: {0}")]
    Stdin(std::io::Error),
    #[error("the config on stdin is not JSON: {0}")]
    PrecreateInput(serde_json::Error),
    #[error("cannot write the config to stdout: {0}")]
    Stdout(std::io::Error),
    #[error("cannot serialize the edited config: {0}")]
    PrecreateOutput(serde_json::Error),
    #[error(
        "{name}={value}: refused: the container is unprivileged (no CAP_SYS_ADMIN in its \
         bounding set) and {config} sets [hook] allow-unprivileged-requests = false; run it \
         privileged, or give the GPU through CDI"
    )]
    Unprivileged {
        name: String,
        value: String,
        config: std::path::PathBuf,
    },
}
