//! `amd-ctk gpu list`: the host's GPUs in index order, as a table or JSON.
//! A host without GPUs is an error (exit 1) saying whether the amdgpu driver
//! is loaded; nothing goes to stdout then.

use crate::cli_error::CliError;
use amd_container_common::hardware::{discover, require_gpus};
use clap::{Subcommand, ValueEnum};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum GpuCommand {
    /// List the AMD GPUs (and compute partitions) of this host, in index order.
    List(ListArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub fn run(command: &GpuCommand) -> Result<ExitCode, CliError> {
    let GpuCommand::List(args) = command;
    let inventory = discover()?;
    require_gpus(&inventory)?;
    match args.format {
        Format::Json => {
            let text =
                serde_json::to_string_pretty(&inventory).map_err(|source| CliError::Json {
                    what: "GPU list",
                    source,
                })?;
            println!("{text}");
        }
        Format::Table => {
            let header =
                ["INDEX", "UNIQUE ID", "PCI ADDRESS", "PARTITION", "NODES"].map(String::from);
            let mut rows = vec![header];
            for g in &inventory.gpus {
                let partition = match g.partition {
                    Some(k) => format!("{} #{k}", g.partition_mode()),
                    None => g.partition_mode(),
                };
                let nodes: Vec<String> = g.nodes().map(|n| n.path.display().to_string()).collect();
                rows.push([
                    g.index.to_string(),
                    g.unique_id_hex().unwrap_or_else(|| "N/A".into()),
                    g.pci_address.to_string(),
                    partition,
                    nodes.join(" "),
                ]);
            }
            let widths: Vec<usize> = (0..4)
                .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
                .collect();
            for r in &rows {
                let mut line = String::new();
                for (c, w) in widths.iter().enumerate() {
                    line.push_str(&format!("{:<w$}  ", r[c]));
                }
                line.push_str(&r[4]);
                println!("{line}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
