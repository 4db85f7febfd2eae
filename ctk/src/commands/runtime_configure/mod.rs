//! `amd-ctk runtime configure`: registers the toolkit with Docker, Podman,
//! CRI-O and containerd.
//!
//! - docker: `runtimes.amd` in daemon.json → `amd-container-runtime` (the shim
//!   that adds the hook to GPU containers' specs).
//! - containerd: a runtime `amd` (runc v2 shim, `BinaryName` = the shim).
//! - podman, crio: our hooks JSON in an OCI hooks directory (the hook runs for
//!   every container and returns at once for those without a GPU request);
//!   for crio with a non-default directory, a drop-in adding it to `hooks_dir`.
//!
//! Every file is edited under a lock, backed up before our first change
//! (`<file>.bak`, kept if it exists), replaced atomically with its owner,
//! group, mode and extended attributes, left alone when nothing changes, and
//! never touched when it cannot be parsed or replaced (file_edit). A file or
//! an entry we did not write (a runtime `amd` of another vendor, an admin's
//! crio.conf) is never replaced or deleted: only what we recognise as ours
//! (or marked as ours) is changed back by `--remove`, and what is left is
//! reported (`EditReport::kept`).
//!
//! Layout: engine_table lists the engines (one row each: name, refused
//! flags, help, constructor); each engine is one module (docker,
//! containerd/, podman, crio/) with its [`engine::Engine`] and planner;
//! engine runs an engine's edits all or nothing; file_edit edits one file.
//! This module parses and checks the command line and dispatches through
//! the table.

mod containerd;
mod crio;
mod docker;
mod docker_cdi;
mod engine;
mod engine_table;
mod error;
mod file_edit;
mod hooks_dir;
mod podman;
mod runtime_edit;
mod toml_marks;
mod toml_tables;

use engine::{configure, Reporter, Settings};
use engine_table::{EngineDef, Flag};
pub use error::ConfigureError;
use runtime_edit::{CdiSetting, DefaultRuntime, RuntimeEdit, DEFAULT_RUNTIME_PATH};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(after_help = engine_table::files_help())]
pub struct ConfigureArgs {
    /// The container engine to configure.
    #[arg(long, value_enum, default_value = "docker")]
    pub runtime: EngineDef,
    /// The file to edit: daemon.json (docker), config.toml (containerd) or
    /// the drop-in (crio). `--config-path` is upstream's spelling.
    #[arg(long, value_name = "PATH", visible_alias = "config-path")]
    pub config: Option<PathBuf>,
    /// podman, crio: the OCI hooks directory [default: /usr/share/containers/oci/hooks.d].
    #[arg(long, value_name = "DIR")]
    pub hooks_dir: Option<PathBuf>,
    /// docker, containerd: make `amd` the default runtime.
    #[arg(long, visible_alias = "amd-set-as-default", conflicts_with_all = ["unset_as_default", "remove"])]
    pub set_as_default: bool,
    /// docker, containerd: stop `amd` being the default runtime (another default is left alone).
    #[arg(
        long,
        visible_alias = "unset-amd-as-default",
        conflicts_with = "remove"
    )]
    pub unset_as_default: bool,
    /// Remove what this command adds (the runtime `amd` and `amd` as default, or
    /// the hooks JSON and our crio drop-in), and for docker features.cdi if amd-ctk
    /// set it (containerd: enable_cdi with --cdi). Other runtimes, features and CDI
    /// specs are never touched.
    #[arg(long)]
    pub remove: bool,
    /// docker: features.cdi = true even over an admin's false (docker sets it by
    /// default where it is unset); containerd: enable_cdi = true.
    #[arg(long, conflicts_with = "no_cdi")]
    pub cdi: bool,
    /// docker: leave features.cdi alone (Docker 25 to 28.1 then keep CDI off:
    /// `--device amd.com/gpu=…` is refused); with --remove, keep ours too.
    #[arg(long)]
    pub no_cdi: bool,
    /// Print the would-be file on stdout (what would change on stderr); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// podman: register the hook for Podman's precreate stage (it edits the spec
    /// before the container is created) instead of prestart.
    #[arg(long)]
    pub precreate: bool,
    /// podman, crio: the hook binary named in the hooks JSON [default: /usr/bin/amd-container-hook].
    #[arg(long, value_name = "PATH")]
    pub hook_path: Option<PathBuf>,
    /// docker, containerd: the runtime binary Docker / containerd runs, a name
    /// looked up in PATH or a path [default: amd-container-runtime].
    #[arg(long, value_name = "PATH")]
    pub runtime_path: Option<String>,
}

/// Is `flag` on the command line?
fn given(args: &ConfigureArgs, flag: Flag) -> bool {
    match flag {
        Flag::SetAsDefault => args.set_as_default,
        Flag::UnsetAsDefault => args.unset_as_default,
        Flag::Cdi => args.cdi,
        Flag::NoCdi => args.no_cdi,
        Flag::RuntimePath => args.runtime_path.is_some(),
        Flag::HooksDir => args.hooks_dir.is_some(),
        Flag::HookPath => args.hook_path.is_some(),
        Flag::Precreate => args.precreate,
        Flag::Config => args.config.is_some(),
    }
}

/// Rejects options that mean nothing for the engine (rather than ignoring them).
fn check(args: &ConfigureArgs) -> Result<(), ConfigureError> {
    let engine = &args.runtime;
    for flag in Flag::ALL {
        if let Some(why) = engine.refusal(flag).filter(|_| given(args, flag)) {
            return Err(ConfigureError::NotForEngine {
                flag: flag.name(),
                engine: engine.name,
                why,
            });
        }
    }
    if let Some(p) = &args.hook_path {
        if !p.is_absolute() {
            return Err(ConfigureError::RelativeHookPath(p.clone()));
        }
    }
    Ok(())
}

/// The runtime entry the command line asks for.
fn runtime_edit(args: &ConfigureArgs) -> RuntimeEdit<'_> {
    RuntimeEdit {
        runtime_path: args.runtime_path.as_deref().unwrap_or(DEFAULT_RUNTIME_PATH),
        default: if args.set_as_default {
            DefaultRuntime::Set
        } else if args.unset_as_default {
            DefaultRuntime::Unset
        } else {
            DefaultRuntime::Keep
        },
        cdi: if args.no_cdi {
            CdiSetting::Leave
        } else if args.cdi {
            CdiSetting::On
        } else {
            args.runtime.cdi_default
        },
        remove: args.remove,
    }
}

pub fn run(args: &ConfigureArgs) -> Result<ExitCode, ConfigureError> {
    check(args)?;
    let out = Reporter {
        dry_run: args.dry_run,
    };
    let settings = Settings {
        config: args.config.as_deref(),
        hooks_dir: args.hooks_dir.as_deref(),
        hook_path: args
            .hook_path
            .clone()
            .unwrap_or_else(|| hooks_dir::DEFAULT_HOOK_PATH.into()),
        precreate: args.precreate,
        dry_run: args.dry_run,
        edit: runtime_edit(args),
    };
    let engine = (args.runtime.build)(&settings)?;
    configure(engine.as_ref(), args.dry_run, &out)?;
    Ok(ExitCode::SUCCESS)
}

/// `runtime configure --runtime docker --remove --config PATH`: what the
/// packages run on removal (package_removal); `root` prefixes the record's
/// default path.
pub fn remove_docker_entry(path: &Path, root: &Path) -> Result<(), ConfigureError> {
    let edit = RuntimeEdit {
        runtime_path: DEFAULT_RUNTIME_PATH,
        default: DefaultRuntime::Keep,
        cdi: CdiSetting::Default,
        remove: true,
    };
    let engine = docker::Docker::new(
        path.to_path_buf(),
        edit,
        &docker_cdi::record_path(root),
        false,
    )?;
    configure(&engine, false, &Reporter { dry_run: false })
}
