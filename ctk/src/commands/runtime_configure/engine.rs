//! The one shape of every engine's registration: an [`Engine`] names the
//! files it edits, each with a planner that decides from the file's current
//! content what it should hold; [`configure`] applies them in order and
//! reports what changed.
//!
//! Contract: planners are pure (they may run twice, see file_edit); each file
//! is edited with file_edit's guarantees (locked, backed up, atomic, never
//! touched when it cannot be parsed); a run changes all of its files or none:
//! when one fails, the ones already changed are put back as they were
//! (their backups made by this run removed) before the error is returned.
//! Nothing is reported as changed unless the whole run succeeded.

use super::error::ConfigureError;
use super::file_edit::{self, Change, FileOutcome, Options, Undo};
use super::runtime_edit::RuntimeEdit;
use std::path::{Path, PathBuf};

/// The command line as an engine's constructor (engine_table) sees it,
/// after the flags it does not take were refused.
pub struct Settings<'a> {
    /// `--config`, when given.
    pub config: Option<&'a Path>,
    /// `--hooks-dir`, when given.
    pub hooks_dir: Option<&'a Path>,
    /// `--hook-path`, or the default.
    pub hook_path: PathBuf,
    pub precreate: bool,
    pub dry_run: bool,
    /// The runtime entry (Docker, containerd); its `remove` is `--remove`
    /// for every engine.
    pub edit: RuntimeEdit<'a>,
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

/// A planner: what a file should become, from its current bytes (`None`:
/// missing), and the report of that change.
pub type Plan<'a> = Box<dyn Fn(Option<&[u8]>) -> Result<(Change, EditReport), ConfigureError> + 'a>;

/// One file of an engine's registration.
pub struct FileEdit<'a> {
    pub path: PathBuf,
    /// Copy the file to `FILE.bak` before our first change (not in
    /// directories whose every file the engine reads).
    pub backup: bool,
    /// The toolkit's own state (mode 0600), not an engine's file.
    pub private: bool,
    /// Say nothing when the file does not change (a file that matters only
    /// in some setups, such as the other hooks variant).
    pub quiet_unchanged: bool,
    pub plan: Plan<'a>,
}

/// A container engine `runtime configure` registers the toolkit with.
pub trait Engine {
    /// The files this run edits, in the order they are changed.
    fn edits(&self) -> Result<Vec<FileEdit<'_>>, ConfigureError>;
    /// What to tell the admin after the report (how to apply the change):
    /// `done[i]` is how the i-th file of [`Engine::edits`] went.
    fn after(&self, done: &[(FileOutcome, EditReport)], dry_run: bool) -> Vec<String>;
}

/// Applies `engine`'s edits, all or nothing, then reports.
pub fn configure(engine: &dyn Engine, dry_run: bool, out: &Reporter) -> Result<(), ConfigureError> {
    let edits = engine.edits()?;
    let mut done: Vec<(FileOutcome, EditReport)> = Vec::with_capacity(edits.len());
    let mut undos: Vec<Undo> = Vec::with_capacity(edits.len());
    for edit in &edits {
        let opts = Options {
            dry_run,
            backup: edit.backup,
            private: edit.private,
        };
        match file_edit::apply_undoable(&edit.path, opts, &edit.plan) {
            Ok((outcome, changes, undo)) => {
                done.push((outcome, changes));
                undos.push(undo);
            }
            Err(e) => {
                for undo in undos.into_iter().rev() {
                    if let Err(u) = undo.run() {
                        eprintln!("amd-ctk: warning: could not take back an earlier change: {u}");
                    }
                }
                return Err(e);
            }
        }
    }
    for (edit, (outcome, changes)) in edits.iter().zip(&done) {
        out.file(&edit.path, outcome, changes, edit.quiet_unchanged);
    }
    for line in engine.after(&done, dry_run) {
        out.say(&line);
    }
    Ok(())
}

/// Prints the report: on stdout, or on stderr with --dry-run (stdout then
/// carries the would-be file).
pub struct Reporter {
    pub dry_run: bool,
}

impl Reporter {
    pub fn say(&self, line: &str) {
        if self.dry_run {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    /// One file's outcome and changes; `quiet_unchanged` hides "no change".
    fn file(
        &self,
        path: &Path,
        outcome: &FileOutcome,
        changes: &EditReport,
        quiet_unchanged: bool,
    ) {
        let p = path.display();
        match outcome {
            FileOutcome::Unchanged if !quiet_unchanged => self.say(&format!("{p}: no change")),
            FileOutcome::Unchanged => {}
            FileOutcome::Written { backup } => {
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
            FileOutcome::Deleted => self.say(&format!("{p}: removed")),
            FileOutcome::WouldWrite => {
                if changes.lines.is_empty() {
                    self.say(&format!("{p}: would be written (dry run)"));
                }
                for l in &changes.lines {
                    self.say(&format!("{p}: {l} (dry run, not written)"));
                }
            }
            FileOutcome::WouldDelete => self.say(&format!("{p}: would be removed (dry run)")),
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

#[cfg(test)]
mod tests {
    use super::super::file_edit::testutil::TempDir;
    use super::*;
    use std::fs;

    /// Writes `content` to each of `paths`; the planner of `fail_at` fails.
    struct Fake {
        paths: Vec<PathBuf>,
        fail_at: Option<usize>,
    }

    impl Engine for Fake {
        fn edits(&self) -> Result<Vec<FileEdit<'_>>, ConfigureError> {
            Ok(self
                .paths
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let fail = self.fail_at == Some(i);
                    let path = p.clone();
                    FileEdit {
                        path: p.clone(),
                        backup: true,
                        private: false,
                        quiet_unchanged: false,
                        plan: Box::new(move |_cur| {
                            if fail {
                                return Err(ConfigureError::shape(&path, "x", "a table"));
                            }
                            Ok((Change::Write(b"new\n".to_vec()), EditReport::default()))
                        }),
                    }
                })
                .collect())
        }

        fn after(&self, _: &[(FileOutcome, EditReport)], _: bool) -> Vec<String> {
            Vec::new()
        }
    }

    fn run(e: &Fake) -> Result<(), ConfigureError> {
        configure(e, false, &Reporter { dry_run: false })
    }

    #[test]
    fn all_files_change_together() {
        let d = TempDir::new("engine-ok");
        let (a, b) = (d.path().join("a.conf"), d.path().join("b.conf"));
        fs::write(&a, "old a\n").unwrap();
        run(&Fake {
            paths: vec![a.clone(), b.clone()],
            fail_at: None,
        })
        .unwrap();
        assert_eq!(fs::read_to_string(&a).unwrap(), "new\n");
        assert_eq!(fs::read_to_string(&b).unwrap(), "new\n");
        assert_eq!(
            fs::read_to_string(d.path().join("a.conf.bak")).unwrap(),
            "old a\n"
        );
    }

    #[test]
    fn a_later_failure_takes_back_the_earlier_files() {
        let d = TempDir::new("engine-undo");
        let (a, b, c) = (
            d.path().join("a.conf"),
            d.path().join("b.conf"),
            d.path().join("c.conf"),
        );
        fs::write(&a, "old a\n").unwrap();
        fs::write(&c, "old c\n").unwrap();
        let before = d.names();
        let err = run(&Fake {
            paths: vec![a.clone(), b.clone(), c.clone()],
            fail_at: Some(2),
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("c.conf: x is not a table"),
            "{err}"
        );
        // a rewritten then restored (no backup left), b created then removed,
        // c never touched.
        assert_eq!(fs::read_to_string(&a).unwrap(), "old a\n");
        assert!(!b.exists());
        assert_eq!(fs::read_to_string(&c).unwrap(), "old c\n");
        assert_eq!(d.names(), before);
    }

    #[test]
    fn an_existing_backup_survives_the_undo() {
        let d = TempDir::new("engine-undo-bak");
        let (a, b) = (d.path().join("a.conf"), d.path().join("b.conf"));
        fs::write(&a, "old a\n").unwrap();
        fs::write(d.path().join("a.conf.bak"), "first state\n").unwrap();
        run(&Fake {
            paths: vec![a.clone(), b],
            fail_at: Some(1),
        })
        .unwrap_err();
        assert_eq!(fs::read_to_string(&a).unwrap(), "old a\n");
        assert_eq!(
            fs::read_to_string(d.path().join("a.conf.bak")).unwrap(),
            "first state\n"
        );
    }
}
