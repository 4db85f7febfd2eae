//! CRI-O: our hooks JSON in a hooks directory and, for a non-default
//! directory, the drop-in naming it (drop_in: its planner and what makes a
//! file ours). The drop-in is edited first: a file there we must not edit
//! stops the run before anything changed.
//!
//! Contract: the planners are drop_in's and hooks_dir's; nothing here reads
//! or writes a file.

mod drop_in;

use drop_in::DEFAULT_DROP_IN;

use super::engine::{EditReport, Engine, FileEdit, Plan, Settings};
use super::error::ConfigureError;
use super::file_edit::{self, FileOutcome};
use super::hooks_dir::{self, Variant};
use std::path::{Path, PathBuf};

/// The `crio` row of engine_table.
pub fn build<'a>(s: &'a Settings<'a>) -> Result<Box<dyn Engine + 'a>, ConfigureError> {
    Ok(Box::new(Crio {
        dir: Crio::absolute_dir(s.hooks_dir)?,
        drop_in: s
            .config
            .map_or_else(|| DEFAULT_DROP_IN.into(), Path::to_path_buf),
        hook_path: s.hook_path.clone(),
        remove: s.edit.remove,
    }))
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
        let backup = !drop_in::in_drop_in_dir(&resolved);
        let plan: Plan<'_> = if self.remove || hooks_dir::is_default_hooks_dir(&self.dir) {
            // The default directory needs no drop-in; one of ours from an
            // earlier run with another directory would now be stale.
            Box::new(move |cur| drop_in::plan_remove(cur, &resolved))
        } else {
            let dir = self.dir.to_string_lossy().into_owned();
            Box::new(move |cur| drop_in::plan_install(cur, &resolved, &dir))
        };
        let mut edits = vec![FileEdit {
            path: self.drop_in.clone(),
            backup,
            private: false,
            quiet_unchanged: true,
            plan,
        }];
        edits.extend(hooks_dir::hooks_edits(
            &self.dir,
            Variant::Prestart,
            &self.hook_path,
            self.remove,
        )?);
        Ok(edits)
    }

    fn after(&self, done: &[(FileOutcome, EditReport)], dry_run: bool) -> Vec<String> {
        let mut out: Vec<String> = hooks_dir::missing_hook_note(&self.hook_path, self.remove)
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
