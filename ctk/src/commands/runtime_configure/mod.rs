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

mod containerd;
mod crio;
mod docker;
mod docker_cdi;
mod engine;
mod engines;
mod error;
mod file_edit;
mod hooks_dir;
mod toml_marks;
mod toml_tables;

use engine::{configure, Engine, Reporter};
use engines::{Crio, EntryFormat, Podman, RuntimeEntry};
pub use error::ConfigureError;
use hooks_dir::Variant;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The name of our runtime in Docker's and containerd's configuration.
pub const RUNTIME_NAME: &str = "amd";
const DEFAULT_RUNTIME_PATH: &str = "amd-container-runtime";

/// The engines `--runtime` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineName {
    Docker,
    Podman,
    Crio,
    Containerd,
}

/// What to do with the engine's default runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultRuntime {
    Keep,
    Set,
    /// Drop it, but only where it is ours.
    Unset,
}

/// What a Docker or containerd edit does with the engine's CDI switch
/// (Docker's `features.cdi`, containerd's `enable_cdi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CdiSetting {
    /// `--no-cdi`, and containerd without `--cdi`: not touched.
    Leave,
    /// Docker without a flag: turned on where it is not set; an admin's
    /// `false` is kept (and said so). `--remove` takes back only ours.
    Default,
    /// `--cdi`: turned on, an admin's `false` included (the record keeps it
    /// for `--remove`).
    On,
}

/// The runtime entry a Docker or containerd edit adds, changes or removes.
#[derive(Debug, Clone)]
pub struct RuntimeEdit<'a> {
    /// The binary the engine runs: `runtimes.amd.path` (Docker),
    /// `options.BinaryName` of the `amd` runtime (containerd).
    pub runtime_path: &'a str,
    pub default: DefaultRuntime,
    pub cdi: CdiSetting,
    pub remove: bool,
}

impl<'a> RuntimeEdit<'a> {
    fn from_args(args: &'a ConfigureArgs) -> RuntimeEdit<'a> {
        RuntimeEdit {
            runtime_path: args.runtime_path.as_deref().unwrap_or(DEFAULT_RUNTIME_PATH),
            default: default_runtime(args),
            cdi: if args.no_cdi {
                CdiSetting::Leave
            } else if args.cdi {
                CdiSetting::On
            } else if args.runtime == EngineName::Docker {
                CdiSetting::Default
            } else {
                CdiSetting::Leave
            },
            remove: args.remove,
        }
    }
}

impl RuntimeEdit<'_> {
    /// Is `binary`, the program of an engine's runtime entry named `amd`,
    /// ours: the one this edit writes, or any `amd-container-runtime`
    /// (another directory, an earlier `--runtime-path`)? Anything else is
    /// someone else's runtime that happens to be called `amd`.
    pub fn is_ours(&self, binary: &str) -> bool {
        binary == self.runtime_path
            || Path::new(binary).file_name() == Some(std::ffi::OsStr::new(DEFAULT_RUNTIME_PATH))
    }
}

/// The hint of a refusal to replace a runtime `amd` that is not ours.
pub const NOT_OURS_HINT: &str = "Rename or remove that runtime to register ours; if it is      amd-container-runtime under another name, name it with --runtime-path.";

/// The plain edit of the table tests, and one with a change applied.
#[cfg(test)]
pub(crate) mod test_edit {
    use super::{CdiSetting, DefaultRuntime, RuntimeEdit};

    /// `--no-cdi`: CDI left alone (the tables test it separately).
    pub fn edit() -> RuntimeEdit<'static> {
        RuntimeEdit {
            runtime_path: "amd-container-runtime",
            default: DefaultRuntime::Keep,
            cdi: CdiSetting::Leave,
            remove: false,
        }
    }

    pub fn with(f: impl FnOnce(&mut RuntimeEdit<'static>)) -> RuntimeEdit<'static> {
        let mut e = edit();
        f(&mut e);
        e
    }
}

/// What an edit changed, for the report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EditReport {
    pub lines: Vec<String>,
    /// Advice printed after the changes.
    pub notes: Vec<String>,
    /// What was left in place although the command was about it, and why
    /// (an entry called `amd` that is not ours); printed whatever happened.
    pub kept: Vec<String>,
    /// Things the admin should check (printed on stderr, whatever happened).
    pub warnings: Vec<String>,
    /// Docker: a restart is needed (SIGHUP does not apply the change).
    pub needs_restart: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Files:
  docker      /etc/docker/daemon.json (--config): runtimes.amd, default-runtime, features.cdi
              (on unless --no-cdi; which daemon.json files amd-ctk turned it on in is recorded
              in /var/lib/amd-container-toolkit/docker-cdi.json, so --remove takes back only those)
  containerd  /etc/containerd/config.toml (--config), config version 1, 2 or 3 (a new file: 2)
  podman      DIR/amd-container-toolkit.json, or with --precreate amd-container-toolkit-precreate.json
  crio        DIR/amd-container-toolkit.json; with a --hooks-dir other than the default, also the
              drop-in /etc/crio/crio.conf.d/99-amd-container-toolkit.conf (--config); a --config
              file amd-ctk did not write (crio.conf) gets DIR in its hooks_dir instead
DIR is --hooks-dir, default /usr/share/containers/oci/hooks.d.
An edited file is first copied to FILE.bak (an existing FILE.bak is kept), then replaced
atomically, keeping its owner, group and mode; a file that does not parse is reported (with the
position) and left as it is. A runtime `amd` that is not amd-container-runtime is never replaced
or removed.")]
pub struct ConfigureArgs {
    /// The container engine to configure.
    #[arg(long, value_enum, default_value = "docker")]
    pub runtime: EngineName,
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

impl EngineName {
    fn as_str(self) -> &'static str {
        match self {
            EngineName::Docker => "docker",
            EngineName::Podman => "podman",
            EngineName::Crio => "crio",
            EngineName::Containerd => "containerd",
        }
    }
}

/// Rejects options that mean nothing for the engine (rather than ignoring them).
fn check(args: &ConfigureArgs) -> Result<(), ConfigureError> {
    let engine = args.runtime.as_str();
    let hooks_engine = matches!(args.runtime, EngineName::Podman | EngineName::Crio);
    let refuse = |flag: &'static str, why: &'static str| {
        Err(ConfigureError::NotForEngine { flag, engine, why })
    };
    if hooks_engine {
        if args.set_as_default || args.unset_as_default {
            return refuse(
                if args.set_as_default {
                    "--set-as-default"
                } else {
                    "--unset-as-default"
                },
                "the hook runs for every container, there is no runtime to choose",
            );
        }
        if args.cdi || args.no_cdi {
            return refuse(
                if args.cdi { "--cdi" } else { "--no-cdi" },
                "Podman and CRI-O read CDI specs (amd-ctk cdi generate) without configuration",
            );
        }
        if args.runtime_path.is_some() {
            return refuse(
                "--runtime-path",
                "it names the Docker/containerd runtime entry; use --hook-path",
            );
        }
    } else {
        if args.hooks_dir.is_some() {
            return refuse("--hooks-dir", "it is for podman and crio");
        }
        if args.hook_path.is_some() {
            return refuse(
                "--hook-path",
                "the hook path comes from runtime.hook-path in /etc/amd-container-toolkit/config.toml",
            );
        }
    }
    if args.precreate && args.runtime != EngineName::Podman {
        return refuse("--precreate", "only Podman has a precreate stage");
    }
    if args.config.is_some() && args.runtime == EngineName::Podman {
        return refuse(
            "--config",
            "podman needs only the hooks directory (--hooks-dir)",
        );
    }
    if let Some(p) = &args.hook_path {
        if !p.is_absolute() {
            return Err(ConfigureError::RelativeHookPath(p.clone()));
        }
    }
    Ok(())
}

pub fn run(args: &ConfigureArgs) -> Result<ExitCode, ConfigureError> {
    check(args)?;
    let out = Reporter {
        dry_run: args.dry_run,
    };
    let hook_path = || {
        args.hook_path
            .clone()
            .unwrap_or_else(|| hooks_dir::DEFAULT_HOOK_PATH.into())
    };
    let entry = |format, default: &str| -> Result<RuntimeEntry<'_>, ConfigureError> {
        let path: PathBuf = args.config.clone().unwrap_or_else(|| default.into());
        let edit = RuntimeEdit::from_args(args);
        let cdi_record = match format {
            EntryFormat::DockerJson => docker_cdi::Record::open(
                &docker_cdi::record_path(Path::new("/")),
                &path,
                &edit,
                args.dry_run,
            )?,
            EntryFormat::ContainerdToml => None,
        };
        Ok(RuntimeEntry {
            format,
            path,
            edit,
            cdi_record,
        })
    };
    let engine: Box<dyn Engine + '_> = match args.runtime {
        EngineName::Docker => Box::new(entry(EntryFormat::DockerJson, docker::DEFAULT_CONFIG)?),
        EngineName::Containerd => Box::new(entry(
            EntryFormat::ContainerdToml,
            containerd::DEFAULT_CONFIG,
        )?),
        EngineName::Podman => Box::new(Podman {
            dir: args
                .hooks_dir
                .clone()
                .unwrap_or_else(|| hooks_dir::DEFAULT_DIR.into()),
            variant: if args.precreate {
                Variant::Precreate
            } else {
                Variant::Prestart
            },
            hook_path: hook_path(),
            remove: args.remove,
        }),
        EngineName::Crio => Box::new(Crio {
            dir: Crio::absolute_dir(args.hooks_dir.as_deref())?,
            drop_in: args
                .config
                .clone()
                .unwrap_or_else(|| crio::DEFAULT_DROP_IN.into()),
            hook_path: hook_path(),
            remove: args.remove,
        }),
    };
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
    let cdi_record = docker_cdi::Record::open(&docker_cdi::record_path(root), path, &edit, false)?;
    let engine = RuntimeEntry {
        format: EntryFormat::DockerJson,
        path: path.to_path_buf(),
        edit,
        cdi_record,
    };
    configure(&engine, false, &Reporter { dry_run: false })
}

fn default_runtime(args: &ConfigureArgs) -> DefaultRuntime {
    if args.set_as_default {
        DefaultRuntime::Set
    } else if args.unset_as_default {
        DefaultRuntime::Unset
    } else {
        DefaultRuntime::Keep
    }
}
