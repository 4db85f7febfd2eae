//! `amd-ctk`: the command-line tool of the AMD container toolkit.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod cli_error;
mod commands;
mod schema;
#[allow(unsafe_code)]
mod sys;

use clap::{Parser, Subcommand};
use cli_error::CliError;
use commands::{cdi, gpu, gpu_tracker, package_removal, runtime_configure};
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
    Cdi(cdi::CdiCommand),
    /// Inspect the host's AMD GPUs.
    #[command(subcommand)]
    Gpu(gpu::GpuCommand),
    /// GPU Tracker: exclusive or shared GPUs, and which containers hold them.
    GpuTracker(gpu_tracker::TrackerArgs),
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
        Command::Cdi(c) => cdi::run(c),
        Command::Gpu(c) => gpu::run(c),
        Command::GpuTracker(a) => gpu_tracker::run(a),
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
