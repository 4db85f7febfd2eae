//! `amd-ctk gpu-tracker`: upstream's commands and messages.
//!
//! - `enable | disable | reset | status`
//! - `amd-ctk gpu-tracker IDS exclusive|shared`, IDS as in
//!   `AMD_VISIBLE_DEVICES` (indices, ranges, `all`, unique ids, PCI addresses)
//!
//! Contract: the state file is `[gpu-tracker] state-file` of the config file
//! (`AMD_CTK_CONFIG`, else /etc/amd-container-toolkit/config.toml), the one
//! the hook enforces; every change goes through common's `tracker` (locked,
//! atomic, all or nothing). Exit 1 when nothing could be done (disabled, a
//! GPU held by several containers for `exclusive`, bad ids).

use crate::cli_error::CliError;
use amd_container_common::config::Config;
use amd_container_common::hardware::{discover, require_gpus};
use amd_container_common::request::{Request, RequestVar};
use amd_container_common::resolve::select;
use amd_container_common::tracker::{GpuState, Mode, Tracker};
use clap::{Subcommand, ValueEnum};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    override_usage = "amd-ctk gpu-tracker <GPU-IDS> exclusive|shared\n       amd-ctk gpu-tracker enable|disable|reset|status",
    after_help = "\
GPU-IDS: comma-separated indices, ranges (0-3), all, unique ids (0x…), PCI addresses.
  amd-ctk gpu-tracker 0,1,2 exclusive
  amd-ctk gpu-tracker 0,1-2 shared
  amd-ctk gpu-tracker all shared
Disabled until enabled. Exclusive: at most one container at a time holds the GPU; a second
container asking for it fails to start, naming the holder. Shared (the default): any number.
Enforced by amd-container-hook for Docker, Podman, CRI-O and runc/crun alike."
)]
pub struct TrackerArgs {
    #[command(subcommand)]
    command: Option<TrackerCommand>,
    /// GPUs to change: as in AMD_VISIBLE_DEVICES.
    #[arg(value_name = "GPU-IDS", requires = "accessibility")]
    ids: Option<String>,
    /// `exclusive` or `shared`.
    #[arg(value_name = "ACCESSIBILITY", value_enum)]
    accessibility: Option<Access>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Access {
    Exclusive,
    Shared,
}

#[derive(Debug, Subcommand)]
enum TrackerCommand {
    /// Enable the GPU Tracker (starts from nothing: all GPUs shared, no holders).
    Enable,
    /// Disable the GPU Tracker (forgets its state).
    Disable,
    /// Reset the GPU Tracker: all GPUs shared, holders forgotten.
    Reset,
    /// Show each GPU's accessibility and the containers holding it.
    Status,
}

fn tracker() -> Result<Tracker, CliError> {
    let path = Config::default_path();
    let config = Config::load(&path)?;
    Ok(Tracker::new(&config.gpu_tracker.state_file))
}

fn inventory() -> Result<amd_container_common::Inventory, CliError> {
    let inventory = discover()?;
    require_gpus(&inventory)?;
    Ok(inventory)
}

pub fn run(args: &TrackerArgs) -> Result<ExitCode, CliError> {
    let t = tracker()?;
    match (&args.command, &args.ids, args.accessibility) {
        (Some(TrackerCommand::Enable), _, _) => {
            if t.enable(&inventory()?)? {
                println!("GPU Tracker has been enabled");
            } else {
                println!("GPU Tracker is already enabled");
            }
        }
        (Some(TrackerCommand::Disable), _, _) => {
            t.disable()?;
            println!("GPU Tracker has been disabled");
        }
        (Some(TrackerCommand::Reset), _, _) => {
            let enabled = t.reset(&inventory()?)?;
            println!("GPU Tracker has been reset");
            if enabled {
                println!(
                    "Since GPU Tracker was enabled, it is recommended to stop and restart running \
                     containers to get the most accurate GPU Tracker status"
                );
            }
        }
        (Some(TrackerCommand::Status), _, _) => match t.status(&inventory()?)? {
            None => println!("GPU Tracker is disabled"),
            Some(gpus) => print_status(&gpus),
        },
        (None, Some(ids), Some(access)) => {
            let inventory = inventory()?;
            let var = RequestVar {
                name: "GPU-IDS",
                value: ids,
            };
            let (request, selection) = select(&var, &inventory)?;
            if !request.is_gpu() || request == Request::NoGpus {
                return Err(CliError::NamesNoGpu { ids: ids.clone() });
            }
            let mut indices = selection.0.clone();
            indices.sort_unstable();
            let (mode, word) = match access {
                Access::Exclusive => (Mode::Exclusive, "exclusive"),
                Access::Shared => (Mode::Shared, "shared"),
            };
            t.set_mode(&inventory, &indices, mode)?;
            let list: Vec<String> = indices.iter().map(usize::to_string).collect();
            println!("GPUs [{}] have been made {word}", list.join(" "));
        }
        _ => return Err(CliError::TrackerUsage),
    }
    Ok(ExitCode::SUCCESS)
}

/// Upstream's table: GPU Id, UUID, Accessibility, Container Ids (one per line).
fn print_status(gpus: &[GpuState]) {
    let rule = "-".repeat(120);
    println!("{rule}");
    println!(
        "{:<10}{:<25}{:<20}Container Ids",
        "GPU Id", "UUID", "Accessibility"
    );
    println!("{rule}");
    for g in gpus {
        let uuid = g.unique_id.as_deref().unwrap_or("N/A");
        let mut holders = g.holders.iter().map(|h| h.container.as_str());
        let first = holders.next().unwrap_or("-");
        println!(
            "{:<10}{:<25}{:<20}{first}",
            g.index,
            uuid,
            g.mode.to_string()
        );
        for h in holders {
            println!("{:<55}{h}", "");
        }
    }
}
