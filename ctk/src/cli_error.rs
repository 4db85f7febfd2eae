//! [`CliError`]: every error an `amd-ctk` command returns, printed once by
//! `main` (`amd-ctk: MESSAGE`, exit 1). The commands' own error types
//! (engine configuration, the CDI state, rendering, the schema) convert into
//! it; this module imports only those types, never a command's code.

/// Errors reported once, at the edge, by `main`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Discovery(#[from] amd_container_common::hardware::DiscoveryError),
    #[error(transparent)]
    Configure(#[from] crate::commands::runtime_configure::ConfigureError),
    #[error(transparent)]
    NoGpu(#[from] amd_container_common::hardware::NoGpuError),
    #[error(transparent)]
    Config(#[from] amd_container_common::config::ConfigError),
    #[error(transparent)]
    HookEnv(#[from] amd_container_common::config::HookEnvError),
    #[error(transparent)]
    Refresh(#[from] crate::commands::cdi_state::RefreshError),
    #[error(transparent)]
    Tracker(#[from] amd_container_common::tracker::TrackerError),
    #[error(transparent)]
    Request(#[from] amd_container_common::request::RequestError),
    #[error(transparent)]
    CdiName(#[from] amd_container_common::cdi::NameError),
    #[error(transparent)]
    Render(#[from] crate::commands::cdi_render::RenderError),
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    /// `cdi generate` on a host without GPUs.
    #[error("{source}; no CDI spec written")]
    NoGpuNoSpec {
        #[source]
        source: amd_container_common::hardware::NoGpuError,
    },
    /// `cdi validate`: a document the schema accepts but the spec type does not.
    #[error("{} is not a CDI spec: {source}", path.display())]
    NotASpec {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A listing (`what`) that cannot be printed as JSON.
    #[error("cannot serialize the {what} as JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// `gpu-tracker GPU-IDS …` whose GPU-IDS selects no GPU.
    #[error("GPU-IDS {ids:?} names no GPU")]
    NamesNoGpu { ids: String },
    /// `gpu-tracker` with neither a subcommand nor GPU-IDS and a mode.
    #[error(
        "usage: amd-ctk gpu-tracker enable|disable|reset|status, or amd-ctk gpu-tracker \
         GPU-IDS exclusive|shared (see --help)"
    )]
    TrackerUsage,
}
