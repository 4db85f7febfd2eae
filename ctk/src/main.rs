//! `amd-ctk`: the command-line tool of the AMD container toolkit.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod cdi_cmd;
mod cdi_refresh;
mod gpu_cmd;
mod package_removal;
mod runtime_configure;
mod schema;
#[allow(unsafe_code)]
mod sys;
mod tracker_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "amd-ctk",
    version,
    about = "AMD container toolkit: CDI specs, GPU listing, engine configuration"
)]
struct Cli {
    /// Log debug messages on stderr (RUST_LOG, if set, takes precedence).
    #[arg(short, long, global = true)]
    debug: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate, list and validate CDI specs.
    #[command(subcommand)]
    Cdi(cdi_cmd::CdiCommand),
    /// Inspect the host's AMD GPUs.
    #[command(subcommand)]
    Gpu(gpu_cmd::GpuCommand),
    /// GPU Tracker: exclusive or shared GPUs, and which containers hold them.
    GpuTracker(tracker_cmd::TrackerArgs),
    /// Configure container engines.
    #[command(subcommand)]
    Runtime(RuntimeCommand),
    /// Older spelling of `runtime configure`.
    #[command(subcommand, hide = true)]
    Configure(LegacyConfigureCommand),
    /// Print the version.
    Version,
    /// What the packages run when removed: takes back our Docker entry and
    /// hooks JSON (only those recognisably ours).
    #[command(hide = true)]
    PackageRemoval(package_removal::Args),
}

#[derive(Debug, Subcommand)]
enum RuntimeCommand {
    /// Register the toolkit with a container engine.
    Configure(runtime_configure::ConfigureArgs),
}

#[derive(Debug, Subcommand)]
enum LegacyConfigureCommand {
    /// Same as `amd-ctk runtime configure`.
    Runtime(runtime_configure::ConfigureArgs),
}

/// Errors reported once, at the edge, by `main`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Discovery(#[from] amd_container_common::hardware::DiscoveryError),
    #[error(transparent)]
    Configure(#[from] runtime_configure::ConfigureError),
    #[error(transparent)]
    NoGpu(#[from] amd_container_common::hardware::NoGpuError),
    #[error(transparent)]
    Config(#[from] amd_container_common::config::ConfigError),
    #[error(transparent)]
    HookEnv(#[from] amd_container_common::config::HookEnvError),
    #[error(transparent)]
    Refresh(#[from] cdi_refresh::RefreshError),
    #[error(transparent)]
    Tracker(#[from] amd_container_common::tracker::TrackerError),
    #[error(transparent)]
    Request(#[from] amd_container_common::request::RequestError),
    #[error(transparent)]
    CdiName(#[from] amd_container_common::cdi::NameError),
    #[error(transparent)]
    Render(#[from] cdi_cmd::RenderError),
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
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

fn main() -> ExitCode {
    // `amd-ctk cdi list | head` must end quietly, as any Unix filter does.
    sys::default_sigpipe();
    let cli = Cli::parse();
    let default_level = if cli.debug { "debug" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .format_timestamp(None)
        .format_target(false)
        .init();
    let result = match &cli.command {
        Command::Cdi(c) => cdi_cmd::run(c),
        Command::Gpu(c) => gpu_cmd::run(c),
        Command::GpuTracker(a) => tracker_cmd::run(a),
        Command::Runtime(RuntimeCommand::Configure(a))
        | Command::Configure(LegacyConfigureCommand::Runtime(a)) => {
            runtime_configure::run(a).map_err(CliError::from)
        }
        Command::PackageRemoval(a) => package_removal::run(a),
        Command::Version => {
            println!("amd-ctk version {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("amd-ctk: {e}");
        ExitCode::FAILURE
    })
}
