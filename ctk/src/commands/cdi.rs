//! `amd-ctk cdi generate | list | validate | refresh`.

use super::cdi_render::{hook_options, render_spec, SpecFormat};
use super::{cdi_refresh, cdi_state};
use crate::cli_error::CliError;
use crate::schema;
use amd_container_common::cdi::{self, GenerateOptions, NameStrategy, Spec};
use amd_container_common::config::Config;
use amd_container_common::hardware::{discover, require_gpus, Inventory};
use clap::{Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub const DEFAULT_SPEC_PATH: &str = "/etc/cdi/amd.json";

#[derive(Debug, Subcommand)]
pub enum CdiCommand {
    /// Write a CDI spec for the GPUs of this host.
    Generate(GenerateArgs),
    /// List the CDI devices this host has.
    List(ListArgs),
    /// Check a CDI spec against the schema and against this host's GPUs.
    Validate(ValidateArgs),
    /// Regenerate the specs `cdi generate` wrote, with the options they were
    /// written with (run by udev through amd-cdi-refresh.service when GPUs
    /// appear, disappear or change partition mode).
    Refresh,
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Where to write the spec; `-` for stdout.
    #[arg(short, long, default_value = DEFAULT_SPEC_PATH)]
    output: String,
    /// Output format; default from the file extension (.yaml/.yml: yaml), else json.
    #[arg(long, value_enum)]
    format: Option<SpecFormat>,
    /// Vendor part of the CDI kind.
    #[arg(long, default_value = cdi::DEFAULT_VENDOR)]
    vendor: String,
    /// Class part of the CDI kind.
    #[arg(long, default_value = cdi::DEFAULT_CLASS)]
    class: String,
    /// How to name devices: index, uuid (`0x…` as `gpu list` prints it),
    /// pci (`0000:c1:00.0`, all the GPU's partitions); comma-separated or
    /// repeated. Default: all three, so every `AMD_VISIBLE_DEVICES` selector
    /// (and Docker's `--gpus device=…`) has its CDI name.
    #[arg(long, value_delimiter = ',', default_value = "index,uuid,pci")]
    device_name_strategy: Vec<NameStrategy>,
    /// Leave our hook out of the spec (also `[cdi] hooks = false`): containers
    /// given these devices are then neither tracked (GPU tracker) nor logged.
    #[arg(long)]
    no_hooks: bool,
    /// Leave out `additionalGids` (the host groups of nodes that are not
    /// world-rw, for non-root container users), which need cdiVersion 0.7.0:
    /// a spec older engines read; non-root containers then need `--group-add`.
    #[arg(long)]
    no_additional_gids: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[arg(long, value_enum, default_value = "text")]
    format: ListFormat,
    #[arg(long, default_value = cdi::DEFAULT_VENDOR)]
    vendor: String,
    #[arg(long, default_value = cdi::DEFAULT_CLASS)]
    class: String,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The spec to check.
    #[arg(long, default_value = DEFAULT_SPEC_PATH)]
    path: PathBuf,
}

pub fn run(command: &CdiCommand) -> Result<ExitCode, CliError> {
    match command {
        CdiCommand::Generate(a) => generate(a),
        CdiCommand::List(a) => list(a),
        CdiCommand::Validate(a) => validate(a),
        CdiCommand::Refresh => cdi_refresh::run(),
    }
}

fn format_for(path: &str, explicit: Option<SpecFormat>) -> SpecFormat {
    explicit.unwrap_or_else(|| {
        if path.ends_with(".yaml") || path.ends_with(".yml") {
            SpecFormat::Yaml
        } else {
            SpecFormat::Json
        }
    })
}

fn generate(args: &GenerateArgs) -> Result<ExitCode, CliError> {
    let inventory = discover()?;
    if let Err(e) = require_gpus(&inventory) {
        return Err(CliError::NoGpuNoSpec { source: e });
    }
    let config_path = Config::default_path();
    let config = Config::load(&config_path)?;
    let no_hooks = args.no_hooks || !config.cdi.hooks;
    let options = GenerateOptions {
        vendor: args.vendor.clone(),
        class: args.class.clone(),
        strategies: dedup(&args.device_name_strategy),
        user_access: if args.no_additional_gids {
            Vec::new()
        } else {
            config.devices.user_access.clone()
        },
        hook: hook_options(&config, &config_path, no_hooks)?,
    };
    let spec = cdi::generate(&inventory, &options)?;
    let gids = &spec.container_edits.additional_gids;
    if !gids.is_empty() {
        eprintln!(
            "amd-ctk: note: the nodes are not world-rw, so the spec gives their groups {gids:?} \
             as additionalGids, which needs cdiVersion 0.7.0 (older engines, e.g. podman < 5.1, docker < 27, \
             refuse it); --no-additional-gids writes a spec they read (then non-root containers \
             need --group-add)"
        );
    }
    let format = format_for(&args.output, args.format);
    let text = render_spec(&spec, format)?;
    if args.output == "-" {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let path = Path::new(&args.output);
    // Recorded for `cdi refresh` (the state file), under the same lock.
    let flags = cdi_state::Flags {
        no_additional_gids: args.no_additional_gids,
        no_hooks: args.no_hooks,
    };
    cdi_state::write_and_record(path, format, &options, flags, &text)?;
    println!("Generated CDI spec: {}", path.display());
    Ok(ExitCode::SUCCESS)
}

fn dedup(strategies: &[NameStrategy]) -> Vec<NameStrategy> {
    let mut out = Vec::new();
    for s in strategies {
        if !out.contains(s) {
            out.push(*s);
        }
    }
    out
}

/// One entry of `cdi list`: a qualified device name and its nodes.
#[derive(serde::Serialize)]
struct ListedDevice {
    name: String,
    nodes: Vec<String>,
}

/// The devices `cdi generate` would write by default (every name form),
/// with each one's GPU nodes (`/dev/kfd`, given with any of them, aside).
fn listed_devices(
    inventory: &Inventory,
    vendor: &str,
    class: &str,
) -> Result<Vec<ListedDevice>, CliError> {
    let options = GenerateOptions {
        vendor: vendor.into(),
        class: class.into(),
        ..Default::default()
    };
    let spec = cdi::generate(inventory, &options)?;
    // `all` first, as upstream lists it.
    let mut devices: Vec<&cdi::Device> = spec.devices.iter().filter(|d| d.name == "all").collect();
    devices.extend(spec.devices.iter().filter(|d| d.name != "all"));
    Ok(devices
        .into_iter()
        .map(|d| ListedDevice {
            name: format!("{}={}", spec.kind, d.name),
            nodes: d
                .container_edits
                .device_nodes
                .iter()
                .map(|n| n.path.clone())
                .collect(),
        })
        .collect())
}

fn list(args: &ListArgs) -> Result<ExitCode, CliError> {
    cdi::validate_kind(&args.vendor, &args.class)?;
    let inventory = discover()?;
    require_gpus(&inventory)?;
    let devices = listed_devices(&inventory, &args.vendor, &args.class)?;
    match args.format {
        ListFormat::Json => {
            let doc = serde_json::json!({ "count": inventory.gpus.len(), "devices": devices });
            let text = serde_json::to_string_pretty(&doc).map_err(|source| CliError::Json {
                what: "CDI device list",
                source,
            })?;
            println!("{text}");
        }
        ListFormat::Text => {
            let n = inventory.gpus.len();
            println!(
                "Found {n} AMD GPU {}",
                if n == 1 { "device" } else { "devices" }
            );
            for (i, d) in devices.iter().enumerate() {
                println!("{}", d.name);
                // `all` and a partitioned GPU's PCI name are names only;
                // the nodes are shown under each GPU.
                if i > 0 && d.nodes.len() <= 2 {
                    d.nodes.iter().for_each(|p| println!("  {p}"));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

const EXIT_INVALID: u8 = 1;
const EXIT_UNREADABLE: u8 = 2;

fn validate(args: &ValidateArgs) -> Result<ExitCode, CliError> {
    let path = &args.path;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("amd-ctk: cannot read {}: {e}", path.display());
            return Ok(ExitCode::from(EXIT_UNREADABLE));
        }
    };
    let format = match format_for(&path.to_string_lossy(), None) {
        SpecFormat::Yaml => cdi::Format::Yaml,
        SpecFormat::Json => cdi::Format::Json,
    };
    let doc = match cdi::parse_document(&text, format) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("amd-ctk: {} is {e}", path.display());
            return Ok(ExitCode::from(EXIT_UNREADABLE));
        }
    };
    let mut problems: Vec<String> = schema::violations(&doc)?
        .into_iter()
        .map(|v| format!("schema: {v}"))
        .collect();
    let mut notes: Vec<String> = Vec::new();
    let mut hooked = None;
    if problems.is_empty() {
        let spec: Spec = serde_json::from_value(doc).map_err(|source| CliError::NotASpec {
            path: path.clone(),
            source,
        })?;
        problems.extend(spec_problems(&spec));
        let inventory = discover()?;
        problems.extend(
            cdi::compare_with_hardware(&spec, &inventory)
                .iter()
                .map(|d| format!("stale: {d}")),
        );
        notes.extend(cdi::layout_notes(&spec, &inventory));
        hooked = Some(cdi::has_our_hook(&spec));
    }
    let which = match hooked {
        Some(true) => " (with amd-container-hook: GPU tracker and log)",
        Some(false) => {
            " (plain: no amd-container-hook, so the GPU tracker does not see its containers)"
        }
        None => "",
    };
    if problems.is_empty() {
        println!(
            "{}: valid and up to date with this host{which}",
            path.display()
        );
        notes.iter().for_each(|n| println!("  note: {n}"));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: {} problem{}{which}",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    problems.iter().for_each(|p| println!("  {p}"));
    notes.iter().for_each(|n| println!("  note: {n}"));
    Ok(ExitCode::from(EXIT_INVALID))
}

const KNOWN_VERSIONS: &[&str] = &[
    "0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0",
];

fn version_key(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// Checks the schema cannot express: names, kind and version.
fn spec_problems(spec: &Spec) -> Vec<String> {
    let mut out = Vec::new();
    match spec.kind.split_once('/') {
        Some((vendor, class)) => {
            if let Err(e) = cdi::validate_kind(vendor, class) {
                out.push(e.to_string());
            }
        }
        None => out.push(format!(
            "invalid CDI kind {:?}: expected vendor.com/class",
            spec.kind
        )),
    }
    for d in &spec.devices {
        if let Err(e) = cdi::validate_device_name(&d.name) {
            out.push(e.to_string());
        }
    }
    if !KNOWN_VERSIONS.contains(&spec.cdi_version.as_str()) {
        out.push(format!("unknown cdiVersion {:?}", spec.cdi_version));
    } else {
        let needed = cdi::minimum_version(spec);
        if version_key(needed) > version_key(&spec.cdi_version) {
            out.push(format!(
                "cdiVersion {} is too old for this content: it needs {needed}",
                spec.cdi_version
            ));
        }
    }
    out
}
