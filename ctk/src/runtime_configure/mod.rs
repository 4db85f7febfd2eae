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
//! reported (`Changes::kept`).

mod containerd;
mod crio;
mod docker;
mod file_edit;
mod hooks_dir;
mod toml_marks;

pub use file_edit::EditError;
use file_edit::{Options, Outcome};
use hooks_dir::Variant;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::CliError;

/// The name of our runtime in Docker's and containerd's configuration.
pub const RUNTIME_NAME: &str = "amd";
const DEFAULT_RUNTIME_PATH: &str = "amd-container-runtime";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
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

/// The runtime entry a Docker or containerd edit adds, changes or removes.
#[derive(Debug, Clone)]
pub struct RuntimeEdit<'a> {
    /// The binary the engine runs: `runtimes.amd.path` (Docker),
    /// `options.BinaryName` of the `amd` runtime (containerd).
    pub runtime_path: &'a str,
    pub default: DefaultRuntime,
    pub cdi: bool,
    pub remove: bool,
}

impl<'a> RuntimeEdit<'a> {
    fn from_args(args: &'a ConfigureArgs) -> RuntimeEdit<'a> {
        RuntimeEdit {
            runtime_path: args.runtime_path.as_deref().unwrap_or(DEFAULT_RUNTIME_PATH),
            default: default_runtime(args),
            cdi: args.cdi,
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
    use super::{DefaultRuntime, RuntimeEdit};

    pub fn edit() -> RuntimeEdit<'static> {
        RuntimeEdit {
            runtime_path: "amd-container-runtime",
            default: DefaultRuntime::Keep,
            cdi: false,
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
pub struct Changes {
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
    pub runtime: Engine,
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
    /// the hooks JSON and our crio drop-in); with --cdi, the CDI setting too.
    /// Other runtimes, features and CDI specs are never touched.
    #[arg(long)]
    pub remove: bool,
    /// docker: features.cdi = true; containerd: enable_cdi = true.
    #[arg(long)]
    pub cdi: bool,
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

fn engine_name(e: Engine) -> &'static str {
    match e {
        Engine::Docker => "docker",
        Engine::Podman => "podman",
        Engine::Crio => "crio",
        Engine::Containerd => "containerd",
    }
}

/// Rejects options that mean nothing for the engine (rather than ignoring them).
fn check(args: &ConfigureArgs) -> Result<(), CliError> {
    let engine = engine_name(args.runtime);
    let hooks_engine = matches!(args.runtime, Engine::Podman | Engine::Crio);
    let refuse = |flag: &str, why: &str| {
        Err(CliError::Message(format!(
            "{flag} does not apply to --runtime {engine}: {why}"
        )))
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
        if args.cdi {
            return refuse(
                "--cdi",
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
    if args.precreate && args.runtime != Engine::Podman {
        return refuse("--precreate", "only Podman has a precreate stage");
    }
    if args.config.is_some() && args.runtime == Engine::Podman {
        return refuse(
            "--config",
            "podman needs only the hooks directory (--hooks-dir)",
        );
    }
    if let Some(p) = &args.hook_path {
        if !p.is_absolute() {
            return Err(CliError::Message(format!(
                "--hook-path {}: must be an absolute path (OCI hooks have no PATH lookup)",
                p.display()
            )));
        }
    }
    Ok(())
}

/// Prints the report: on stdout, or on stderr with --dry-run (stdout then
/// carries the would-be file).
struct Reporter {
    dry_run: bool,
}

impl Reporter {
    fn say(&self, line: &str) {
        if self.dry_run {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    /// One file's outcome and changes; `quiet_unchanged` hides "no change".
    fn file(&self, path: &Path, outcome: &Outcome, changes: &Changes, quiet_unchanged: bool) {
        let p = path.display();
        match outcome {
            Outcome::Unchanged if !quiet_unchanged => self.say(&format!("{p}: no change")),
            Outcome::Unchanged => {}
            Outcome::Written { backup } => {
                if changes.lines.is_empty() {
                    self.say(&format!("{p}: written"));
                }
                for l in &changes.lines {
                    self.say(&format!("{p}: {l}"));
                }
                if let Some(b) = backup {
                    self.say(&format!(
                        "{p}: the previous file is saved as {}",
                        b.display()
                    ));
                }
            }
            Outcome::Deleted => self.say(&format!("{p}: removed")),
            Outcome::WouldWrite => {
                if changes.lines.is_empty() {
                    self.say(&format!("{p}: would be written (dry run)"));
                }
                for l in &changes.lines {
                    self.say(&format!("{p}: {l} (dry run, not written)"));
                }
            }
            Outcome::WouldDelete => self.say(&format!("{p}: would be removed (dry run)")),
        }
        for k in &changes.kept {
            self.say(&format!("{p}: left {k}"));
        }
        for w in &changes.warnings {
            eprintln!("amd-ctk: warning: {w}");
        }
        if outcome.changed() {
            for n in &changes.notes {
                self.say(&format!("note: {n}"));
            }
        }
    }
}

pub fn run(args: &ConfigureArgs) -> Result<ExitCode, CliError> {
    check(args)?;
    let out = Reporter {
        dry_run: args.dry_run,
    };
    match args.runtime {
        Engine::Docker => run_docker(args, &out)?,
        Engine::Containerd => run_containerd(args, &out)?,
        Engine::Podman => run_podman(args, &out)?,
        Engine::Crio => run_crio(args, &out)?,
    }
    Ok(ExitCode::SUCCESS)
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

fn options(args: &ConfigureArgs, backup: bool) -> Options {
    Options {
        dry_run: args.dry_run,
        backup,
    }
}

fn run_docker(args: &ConfigureArgs, out: &Reporter) -> Result<(), CliError> {
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| docker::DEFAULT_CONFIG.into());
    let edit = RuntimeEdit::from_args(args);
    let (outcome, changes) = file_edit::apply(&path, options(args, true), |cur| {
        docker::plan(cur, &edit, &path)
    })?;
    out.file(&path, &outcome, &changes, false);
    if matches!(outcome, Outcome::Written { .. }) {
        if changes.needs_restart {
            out.say("To apply: systemctl restart docker");
        } else {
            out.say(
                "To apply: systemctl restart docker, or without a restart: \
                 kill -HUP $(cat /var/run/docker.pid)",
            );
        }
    }
    Ok(())
}

fn run_containerd(args: &ConfigureArgs, out: &Reporter) -> Result<(), CliError> {
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| containerd::DEFAULT_CONFIG.into());
    let edit = RuntimeEdit::from_args(args);
    let (outcome, changes) = file_edit::apply(&path, options(args, true), |cur| {
        containerd::plan(cur, &edit, &path)
    })?;
    out.file(&path, &outcome, &changes, false);
    if matches!(outcome, Outcome::Written { .. }) {
        out.say("To apply: systemctl restart containerd");
    }
    Ok(())
}

/// Installs `variant` in `dir` (and removes the other variant, so exactly
/// one is active), or with --remove deletes both. Returns whether a file
/// changed.
fn hooks_files(
    args: &ConfigureArgs,
    dir: &Path,
    variant: Variant,
    out: &Reporter,
) -> Result<bool, CliError> {
    let hook_path = args
        .hook_path
        .as_deref()
        .unwrap_or(Path::new(hooks_dir::DEFAULT_HOOK_PATH));
    let mut changed = false;
    let mut report = |path: &Path, outcome: Outcome, quiet: bool| {
        changed |= outcome.changed();
        out.file(path, &outcome, &Changes::default(), quiet);
    };
    if args.remove {
        for v in [variant, variant.other()] {
            let path = dir.join(v.file_name());
            let (outcome, ()) =
                file_edit::apply(&path, options(args, false), hooks_dir::plan_remove)?;
            report(&path, outcome, v != variant);
        }
        return Ok(changed);
    }
    let want = hooks_dir::content(variant, &hook_path.to_string_lossy());
    let path = dir.join(variant.file_name());
    let (outcome, ()) = file_edit::apply(&path, options(args, false), |cur| {
        hooks_dir::plan_install(cur, &want)
    })?;
    report(&path, outcome, false);
    let other = dir.join(variant.other().file_name());
    let (outcome, ()) = file_edit::apply(&other, options(args, false), hooks_dir::plan_remove)?;
    report(&other, outcome, true);
    if !hook_path.exists() {
        out.say(&format!(
            "note: {} does not exist (yet); the engine refuses a hook whose binary is missing",
            hook_path.display()
        ));
    }
    Ok(changed)
}

fn is_default_hooks_dir(dir: &Path) -> bool {
    dir.components()
        .eq(Path::new(hooks_dir::DEFAULT_DIR).components())
}

fn run_podman(args: &ConfigureArgs, out: &Reporter) -> Result<(), CliError> {
    let dir = args
        .hooks_dir
        .clone()
        .unwrap_or_else(|| hooks_dir::DEFAULT_DIR.into());
    let variant = if args.precreate {
        Variant::Precreate
    } else {
        Variant::Prestart
    };
    let changed = hooks_files(args, &dir, variant, out)?;
    if changed && !args.dry_run {
        out.say("Podman reads the hooks directory at each container start: nothing to restart.");
    }
    if !args.remove && !is_default_hooks_dir(&dir) {
        out.say(&format!(
            "note: podman uses {0} only with `podman --hooks-dir {0}` or with \
             hooks_dir = [\"{0}\"] under [engine] in containers.conf",
            dir.display()
        ));
    }
    Ok(())
}

fn run_crio(args: &ConfigureArgs, out: &Reporter) -> Result<(), CliError> {
    let dir = match &args.hooks_dir {
        None => PathBuf::from(hooks_dir::DEFAULT_DIR),
        // CRI-O needs an absolute path in hooks_dir.
        Some(d) => std::path::absolute(d)
            .map_err(|e| CliError::Message(format!("--hooks-dir {}: {e}", d.display())))?,
    };
    let drop_in = args
        .config
        .clone()
        .unwrap_or_else(|| crio::DEFAULT_DROP_IN.into());
    // The drop-in first: a file there we must not edit stops the run
    // before anything changed. CRI-O reads every file of a drop-in
    // directory: no backup there.
    let resolved = file_edit::resolved_path(&drop_in);
    let opts = options(args, !crio::in_drop_in_dir(&resolved));
    let (outcome, changes) = if args.remove || is_default_hooks_dir(&dir) {
        // The default directory needs no drop-in; one of ours from an
        // earlier run with another directory would now be stale.
        file_edit::apply(&drop_in, opts, |cur| crio::plan_remove(cur, &resolved))?
    } else {
        let dir_str = dir.to_string_lossy().into_owned();
        file_edit::apply(&drop_in, opts, |cur| {
            crio::plan_install(cur, &resolved, &dir_str)
        })?
    };
    let hooks_changed = hooks_files(args, &dir, Variant::Prestart, out)?;
    let drop_in_changed = outcome.changed();
    out.file(&drop_in, &outcome, &changes, true);
    if !args.dry_run {
        if drop_in_changed {
            out.say("To apply: systemctl restart crio");
        } else if hooks_changed {
            out.say("CRI-O watches its hooks directories: nothing to restart.");
        }
    }
    Ok(())
}
