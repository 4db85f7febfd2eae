//! Podman: our hooks JSON (prestart, or with `--precreate` Podman's
//! precreate stage) in its hooks directory; one variant installed, the other
//! removed, so exactly one is active.
//!
//! Contract: the planners are hooks_dir's; nothing here reads or writes a
//! file.

use super::engine::{EditReport, Engine, FileEdit, Settings};
use super::error::ConfigureError;
use super::file_edit::FileOutcome;
use super::hooks_dir::{self, Variant};
use std::path::{Path, PathBuf};

/// The `podman` row of engine_table.
pub fn build<'a>(s: &'a Settings<'a>) -> Result<Box<dyn Engine + 'a>, ConfigureError> {
    Ok(Box::new(Podman {
        dir: s
            .hooks_dir
            .map_or_else(|| hooks_dir::DEFAULT_DIR.into(), Path::to_path_buf),
        variant: if s.precreate {
            Variant::Precreate
        } else {
            Variant::Prestart
        },
        hook_path: s.hook_path.clone(),
        remove: s.edit.remove,
    }))
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
        hooks_dir::hooks_edits(&self.dir, self.variant, &self.hook_path, self.remove)
    }

    fn after(&self, done: &[(FileOutcome, EditReport)], dry_run: bool) -> Vec<String> {
        let mut out: Vec<String> = hooks_dir::missing_hook_note(&self.hook_path, self.remove)
            .into_iter()
            .collect();
        if done.iter().any(|(o, _)| o.changed()) && !dry_run {
            out.push(
                "Podman reads the hooks directory at each container start: nothing to restart."
                    .into(),
            );
        }
        if !self.remove && !hooks_dir::is_default_hooks_dir(&self.dir) {
            out.push(format!(
                "note: podman uses {0} only with `podman --hooks-dir {0}` or with \
                 hooks_dir = [\"{0}\"] under [engine] in containers.conf",
                self.dir.display()
            ));
        }
        out
    }
}
