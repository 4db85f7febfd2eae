//! `amd-ctk gpu list`.

use crate::CliError;
use amd_container_common::hardware::discover;
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
    match args.format {
        Format::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&inventory).expect("inventory serializes")
            );
        }
        Format::Table if inventory.is_empty() => println!("No AMD GPU found"),
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
