//! The four engines as [`Engine`]s, built from the command line:
//!
//! - [`RuntimeEntry`]: Docker (daemon.json) and containerd (config.toml), a
//!   runtime `amd` in one file; they differ only in their planner and in how
//!   the change is applied. Docker's edit of `features.cdi` is followed by
//!   the record's (docker_cdi), so both change or neither.
//! - [`Podman`]: our hooks JSON in a hooks directory (one variant installed,
//!   the other removed, so exactly one is active).
//! - [`Crio`]: the same hooks JSON, and for a non-default directory our
//!   drop-in naming it (edited first: a file there we must not edit stops
//!   the run before anything changed).
//!
//! Contract: the planners are the per-engine modules' pure `plan*`
//! functions; nothing here reads or writes a file.

use super::engine::{Engine, FileEdit};
use super::file_edit::{self, FileOutcome};
use super::hooks_dir::{self, Variant};
use super::{containerd, crio, docker, docker_cdi, ConfigureError, EditReport, RuntimeEdit};
use std::path::{Path, PathBuf};

/// Which file format a [`RuntimeEntry`] edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryFormat {
    DockerJson,
    ContainerdToml,
}

/// Docker or containerd: the runtime `amd` (and default, CDI) in one file.
pub struct RuntimeEntry<'a> {
    pub format: EntryFormat,
    pub path: PathBuf,
    pub edit: RuntimeEdit<'a>,
    /// Docker: the record of features.cdi, when the edit touches it.
    pub cdi_record: Option<docker_cdi::Record>,
}

impl Engine for RuntimeEntry<'_> {
    fn edits(&self) -> Result<Vec<FileEdit<'_>>, ConfigureError> {
        let path = &self.path;
        let edit = &self.edit;
        let record = self.cdi_record.as_ref();
        let plan: super::engine::Plan<'_> = match self.format {
            EntryFormat::DockerJson => Box::new(move |cur| {
                let (change, report, update) =
                    docker::plan(cur, edit, path, record.and_then(|r| r.entry()))?;
                if let Some(r) = record {
                    r.set_update(update);
                }
                Ok((change, report))
            }),
            EntryFormat::ContainerdToml => Box::new(move |cur| containerd::plan(cur, edit, path)),
        };
        let mut edits = vec![FileEdit {
            path: self.path.clone(),
            backup: true,
            private: false,
            quiet_unchanged: false,
            plan,
        }];
        edits.extend(record.and_then(docker_cdi::Record::file_edit));
        Ok(edits)
    }

    fn after(&self, done: &[(FileOutcome, EditReport)], _dry_run: bool) -> Vec<String> {
        let Some((FileOutcome::Written { .. }, changes)) = done.first() else {
            return Vec::new();
        };
        vec![match self.format {
            // Docker applies runtimes on SIGHUP; not every change (see docker.rs).
            EntryFormat::DockerJson if changes.needs_restart => {
                "To apply: systemctl restart docker".to_string()
            }
            EntryFormat::DockerJson => "To apply: systemctl restart docker, or without a restart: \
                                        kill -HUP $(cat /var/run/docker.pid)"
                .to_string(),
            EntryFormat::ContainerdToml => "To apply: systemctl restart containerd".to_string(),
        }]
    }
}

/// Our hooks files in `dir`: `variant` installed and the other removed, or
/// with `remove` both removed. The planners of [`Podman`] and [`Crio`].
fn hooks_edits<'a>(
    dir: &Path,
    variant: Variant,
    hook_path: &Path,
    remove: bool,
) -> Result<Vec<FileEdit<'a>>, ConfigureError> {
    let remove_plan = || -> super::engine::Plan<'a> {
        Box::new(|cur| hooks_dir::plan_remove(cur).map(|(c, ())| (c, EditReport::default())))
    };
    let other = FileEdit {
        path: dir.join(variant.other().file_name()),
        backup: false,
        private: false,
        quiet_unchanged: true,
        plan: remove_plan(),
    };
    let own = FileEdit {
        path: dir.join(variant.file_name()),
        backup: false,
        private: false,
        quiet_unchanged: false,
        plan: if remove {
            remove_plan()
        } else {
            let want = hooks_dir::content(variant, &hook_path.to_string_lossy())?;
            Box::new(move |cur| {
                hooks_dir::plan_install(cur, &want).map(|(c, ())| (c, EditReport::default()))
            })
        },
    };
    Ok(vec![own, other])
}

/// The note for a hook binary that is not there (yet).
fn missing_hook_note(hook_path: &Path, remove: bool) -> Option<String> {
    (!remove && !hook_path.exists()).then(|| {
        format!(
            "note: {} does not exist (yet); the engine refuses a hook whose binary is missing",
            hook_path.display()
        )
    })
}

fn is_default_hooks_dir(dir: &Path) -> bool {
    dir.components()
        .eq(Path::new(hooks_dir::DEFAULT_DIR).components())
}

/// Podman: the hooks JSON (prestart or precreate) in its hooks directory.
pub struct Podman {
    pub dir: PathBuf,
    pub variant: Variant,
    pub hook_path: PathBuf,
    pub remove: bool,
}

impl Engine for Podman {
    fn edits(&self) -> Result<Vec<FileEdit<'_>>, ConfigureError> {
        hooks_edits(&self.dir, self.variant, &self.hook_path, self.remove)
    }

    fn after(&self, done: &[(FileOutcome, EditReport)], dry_run: bool) -> Vec<String> {
        let mut out: Vec<String> = missing_hook_note(&self.hook_path, self.remove)
            .into_iter()
            .collect();
        if done.iter().any(|(o, _)| o.changed()) && !dry_run {
            out.push(
                "Podman reads the hooks directory at each container start: nothing to restart."
                    .into(),
            );
        }
        if !self.remove && !is_default_hooks_dir(&self.dir) {
            out.push(format!(
                "note: podman uses {0} only with `podman --hooks-dir {0}` or with \
                 hooks_dir = [\"{0}\"] under [engine] in containers.conf",
                self.dir.display()
            ));
        }
        out
    }
}

/// CRI-O: the drop-in (or the admin's file) naming a non-default hooks
/// directory, then the hooks JSON there.
pub struct Crio {
    pub dir: PathBuf,
    pub drop_in: PathBuf,
    pub hook_path: PathBuf,
    pub remove: bool,
}

impl Crio {
    /// `--hooks-dir` made absolute (CRI-O needs that in hooks_dir).
    pub fn absolute_dir(dir: Option<&Path>) -> Result<PathBuf, ConfigureError> {
        match dir {
            None => Ok(PathBuf::from(hooks_dir::DEFAULT_DIR)),
            Some(d) => std::path::absolute(d).map_err(|source| ConfigureError::HooksDir {
                path: d.to_path_buf(),
                source,
            }),
        }
    }
}

impl Engine for Crio {
    fn edits(&self) -> Result<Vec<FileEdit<'_>>, ConfigureError> {
        let resolved = file_edit::resolved_path(&self.drop_in);
        // CRI-O reads every file of a drop-in directory: no backup there.
        let backup = !crio::in_drop_in_dir(&resolved);
        let plan: super::engine::Plan<'_> = if self.remove || is_default_hooks_dir(&self.dir) {
            // The default directory needs no drop-in; one of ours from an
            // earlier run with another directory would now be stale.
            Box::new(move |cur| crio::plan_remove(cur, &resolved))
        } else {
            let dir = self.dir.to_string_lossy().into_owned();
            Box::new(move |cur| crio::plan_install(cur, &resolved, &dir))
        };
        let mut edits = vec![FileEdit {
            path: self.drop_in.clone(),
            backup,
            private: false,
            quiet_unchanged: true,
            plan,
        }];
        edits.extend(hooks_edits(
            &self.dir,
            Variant::Prestart,
            &self.hook_path,
            self.remove,
        )?);
        Ok(edits)
    }

    fn after(&self, done: &[(FileOutcome, EditReport)], dry_run: bool) -> Vec<String> {
        let mut out: Vec<String> = missing_hook_note(&self.hook_path, self.remove)
            .into_iter()
            .collect();
        if !dry_run {
            if done.first().is_some_and(|(o, _)| o.changed()) {
                out.push("To apply: systemctl restart crio".into());
            } else if done.iter().any(|(o, _)| o.changed()) {
                out.push("CRI-O watches its hooks directories: nothing to restart.".into());
            }
        }
        out
    }
}
