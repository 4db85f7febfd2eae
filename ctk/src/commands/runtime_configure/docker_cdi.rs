//! Docker's CDI switch, `features.cdi` in daemon.json, and the record that
//! makes it ours: JSON has no place for a mark, so which daemon.json files
//! amd-ctk turned CDI on in, and what was there before, is kept beside the
//! toolkit's other state.
//!
//! Contract:
//! - Turning on ([`turn_on`]): an unset `features.cdi` becomes `true`
//!   (merged into the admin's `features`, or a `features` we create); an
//!   admin's other value is kept and said so, unless `--cdi` asks to replace
//!   it. Each change is recorded with what it replaced.
//! - Taking back ([`take_back`]): only a recorded `features.cdi` that still
//!   holds the `true` we wrote, and it gets back what it replaced (nothing, or
//!   the admin's value); a `features` we created goes when it is left empty.
//!   A recorded one the admin has changed since is left and forgotten; one
//!   not recorded is left and said so.
//! - The record (`/var/lib/amd-container-toolkit/docker-cdi.json`, or
//!   `$AMD_CTK_DOCKER_CDI_STATE`) maps each daemon.json, by absolute path
//!   with symlinks resolved, to an [`Entry`]. It is read, and written as the
//!   run's last file (so a failure to write it takes the daemon.json edit
//!   back, engine.rs), under an exclusive `flock` on its lock file held for
//!   the whole run: for another amd-ctk, file and record change as one.
//!   Record and lock are 0600, the lock in `DIR/locks` (0700) as every lock
//!   of the toolkit's state, the default state directory 0700; a record
//!   left without entries is deleted; a run with nothing to record (`--no-cdi`,
//!   `--dry-run`, `--remove` without a record) creates nothing.
//! - A record that does not parse stops the run before anything changed.

use super::engine::{EditReport, FileEdit};
use super::error::{ConfigureError, EditError};
use super::file_edit::{self, Change};
use super::runtime_edit::{CdiSetting, RuntimeEdit};
use amd_container_common::flock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the record is kept.
pub const DEFAULT_RECORD: &str = "/var/lib/amd-container-toolkit/docker-cdi.json";
/// Overrides [`DEFAULT_RECORD`] (tests, or a host that keeps state elsewhere).
pub const RECORD_ENV: &str = "AMD_CTK_DOCKER_CDI_STATE";
const VERSION: u32 = 1;

/// The record's path: `$AMD_CTK_DOCKER_CDI_STATE`, else `root` + [`DEFAULT_RECORD`].
pub fn record_path(root: &Path) -> PathBuf {
    match std::env::var_os(RECORD_ENV).filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => root.join(DEFAULT_RECORD.trim_start_matches('/')),
    }
}

/// What amd-ctk did to one daemon.json's `features.cdi`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Entry {
    /// The value `true` replaced (`--cdi` over an admin's `false`); none: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub was: Option<Value>,
    /// There was no `features` object: amd-ctk created it.
    #[serde(default)]
    pub created_features: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    version: u32,
    /// daemon.json (absolute, resolved) → what amd-ctk did there.
    #[serde(rename = "features-cdi", default)]
    files: BTreeMap<String, Entry>,
}

/// What the record must learn from a daemon.json edit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Update {
    #[default]
    Keep,
    Set(Entry),
    Forget,
}

fn not_object(path: &Path) -> ConfigureError {
    ConfigureError::shape(path, "\"features\"", "a JSON object")
}

/// Turns `features.cdi` on in `root` (daemon.json at `path`), as `edit.cdi` says.
pub fn turn_on(
    root: &mut Map<String, Value>,
    edit: &RuntimeEdit,
    path: &Path,
    changes: &mut EditReport,
) -> Result<Update, ConfigureError> {
    if edit.cdi == CdiSetting::Leave {
        return Ok(Update::Keep);
    }
    let created_features = !root.contains_key("features");
    let current = match root.get("features") {
        None => None,
        Some(Value::Object(f)) => f.get("cdi").cloned(),
        Some(_) => return Err(not_object(path)),
    };
    let was = match current {
        Some(Value::Bool(true)) => return Ok(Update::Keep),
        None => None,
        Some(other) if edit.cdi == CdiSetting::On => Some(other),
        Some(other) => {
            changes.kept.push(format!(
                "features.cdi = {other}: an admin's setting, kept; Docker's CDI stays off, so \
                 `docker run --device amd.com/gpu=…` fails. To turn it on: \
                 `amd-ctk runtime configure --runtime docker --cdi` (recorded: --remove then puts \
                 {other} back), or edit it; --no-cdi leaves it without this note"
            ));
            return Ok(Update::Keep);
        }
    };
    let features = root
        .entry("features")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| not_object(path))?;
    features.insert("cdi".into(), json!(true));
    changes.lines.push(match &was {
        None => "set features.cdi = true (Docker's CDI: --device amd.com/gpu=…)".to_string(),
        Some(v) => format!("set features.cdi = true (was {v}; --remove puts it back)"),
    });
    changes.needs_restart = true;
    Ok(Update::Set(Entry {
        was,
        created_features,
    }))
}

/// Takes `features.cdi` back where `recorded` says it is ours.
pub fn take_back(
    root: &mut Map<String, Value>,
    edit: &RuntimeEdit,
    recorded: Option<&Entry>,
    path: &Path,
    changes: &mut EditReport,
) -> Result<Update, ConfigureError> {
    if edit.cdi == CdiSetting::Leave {
        return Ok(Update::Keep);
    }
    let features = match root.get_mut("features") {
        None => None,
        Some(Value::Object(f)) => Some(f),
        Some(_) => return Err(not_object(path)),
    };
    let current = features.as_ref().and_then(|f| f.get("cdi")).cloned();
    let Some(entry) = recorded else {
        if let Some(v) = current {
            changes.kept.push(format!(
                "features.cdi = {v}: not set by amd-ctk (not in its record)"
            ));
        }
        return Ok(Update::Keep);
    };
    let (Some(features), Some(Value::Bool(true))) = (features, &current) else {
        if let Some(v) = current {
            changes.kept.push(format!(
                "features.cdi = {v}: changed since amd-ctk set it to true, so the admin's now"
            ));
        }
        return Ok(Update::Forget);
    };
    match &entry.was {
        None => {
            features.shift_remove("cdi");
            changes
                .lines
                .push("removed features.cdi (amd-ctk had set it)".into());
        }
        Some(v) => {
            features.insert("cdi".into(), v.clone());
            changes.lines.push(format!(
                "set features.cdi = {v} again (as before amd-ctk set it)"
            ));
        }
    }
    if entry.created_features && features.is_empty() {
        root.shift_remove("features");
    }
    changes.needs_restart = true;
    Ok(Update::Forget)
}

/// A daemon.json's name in the record: absolute, symlinks resolved.
fn key_of(daemon_json: &Path) -> String {
    let resolved = file_edit::resolved_path(daemon_json);
    let key = if resolved.is_absolute() && resolved.exists() {
        resolved
    } else {
        let parent = daemon_json.parent().filter(|p| !p.as_os_str().is_empty());
        match (parent.map(std::fs::canonicalize), daemon_json.file_name()) {
            (Some(Ok(dir)), Some(name)) => dir.join(name),
            _ => std::path::absolute(daemon_json).unwrap_or_else(|_| daemon_json.to_path_buf()),
        }
    };
    key.to_string_lossy().into_owned()
}

fn parse(path: &Path, bytes: Option<&[u8]>) -> Result<State, ConfigureError> {
    let Some(bytes) = bytes else {
        return Ok(State::default());
    };
    let state: State = serde_json::from_slice(bytes).map_err(|source| ConfigureError::Record {
        path: path.to_path_buf(),
        source,
    })?;
    if state.version != VERSION {
        return Err(ConfigureError::RecordVersion {
            path: path.to_path_buf(),
            found: state.version,
        });
    }
    Ok(state)
}

/// The record's planner: `update` applied to the entry `key`.
fn plan(
    current: Option<&[u8]>,
    path: &Path,
    key: &str,
    update: &Update,
) -> Result<(Change, EditReport), ConfigureError> {
    let mut state = parse(path, current)?;
    let mut report = EditReport::default();
    match update {
        Update::Keep => return Ok((Change::Unchanged, report)),
        Update::Set(e) if state.files.get(key) == Some(e) => {
            return Ok((Change::Unchanged, report))
        }
        Update::Set(e) => {
            state.files.insert(key.to_string(), e.clone());
            report.lines.push(format!(
                "recorded that amd-ctk set features.cdi in {key} (what --remove takes back)"
            ));
        }
        Update::Forget => {
            if state.files.remove(key).is_none() {
                return Ok((Change::Unchanged, report));
            }
            report.lines.push(format!("forgot features.cdi of {key}"));
        }
    }
    if state.files.is_empty() {
        return Ok((Change::Delete, report));
    }
    state.version = VERSION;
    let mut text =
        serde_json::to_vec_pretty(&state).map_err(|source| ConfigureError::Serialize {
            path: path.to_path_buf(),
            source,
        })?;
    text.push(b'\n');
    Ok((Change::Write(text), report))
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ConfigureError + 'a {
    move |source| {
        EditError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
        .into()
    }
}

/// The record's lock, `DIR/locks/docker-cdi.json.lock` (flock::lock_file:
/// 0600 in a 0700 directory of the caller's); the default state directory is
/// made 0700 (flock::private_dir), another one only created.
fn lock(record: &Path) -> Result<flock::Held, ConfigureError> {
    if let Some(dir) = record.parent().filter(|d| !d.as_os_str().is_empty()) {
        if Path::new(DEFAULT_RECORD).parent() == Some(dir) {
            flock::private_dir(dir).map_err(io("create", dir))?;
        } else {
            std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        }
    }
    let lock_path = flock::lock_file(record);
    let f = flock::open_private(&lock_path).map_err(io("open (to lock)", &lock_path))?;
    let timeout = file_edit::lock_timeout();
    match flock::lock_exclusive(f, &lock_path, timeout, Duration::from_millis(20)) {
        Ok(held) => Ok(held),
        Err(e @ flock::LockError::Timeout { .. }) => Err(EditError::LockTimeout {
            dir: lock_path,
            holder: e.holder(),
            secs: timeout.as_secs_f64(),
        }
        .into()),
        Err(flock::LockError::Lock { source, .. }) => Err(io("lock", &lock_path)(source.into())),
    }
}

/// The record as one run sees it: what it says about this daemon.json, and
/// what the daemon.json planner decided, for the record's own edit.
pub struct Record {
    path: PathBuf,
    key: String,
    entry: Option<Entry>,
    update: RefCell<Update>,
    dry_run: bool,
    _lock: Option<flock::Held>,
}

impl Record {
    /// Reads the record (under its lock, held until drop) for an edit of
    /// `daemon_json`; `None` when the edit leaves features.cdi alone.
    pub fn open(
        record: &Path,
        daemon_json: &Path,
        edit: &RuntimeEdit,
        dry_run: bool,
    ) -> Result<Option<Record>, ConfigureError> {
        if edit.cdi == CdiSetting::Leave {
            return Ok(None);
        }
        let exists = std::fs::symlink_metadata(record).is_ok();
        let lock = if dry_run || (edit.remove && !exists) {
            None
        } else {
            Some(lock(record)?)
        };
        let bytes = match std::fs::read(record) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("read", record)(e)),
        };
        let key = key_of(daemon_json);
        let entry = parse(record, bytes.as_deref())?.files.remove(&key);
        Ok(Some(Record {
            path: record.to_path_buf(),
            key,
            entry,
            update: RefCell::new(Update::Keep),
            dry_run,
            _lock: lock,
        }))
    }

    /// What the record says about this daemon.json.
    pub fn entry(&self) -> Option<&Entry> {
        self.entry.as_ref()
    }

    /// The daemon.json planner's decision (the last one, if it ran twice).
    pub fn set_update(&self, update: Update) {
        *self.update.borrow_mut() = update;
    }

    /// The record's own edit, the run's last (none in a dry run).
    pub fn file_edit(&self) -> Option<FileEdit<'_>> {
        (!self.dry_run).then(|| FileEdit {
            path: self.path.clone(),
            backup: false,
            private: true,
            quiet_unchanged: true,
            plan: Box::new(move |cur| plan(cur, &self.path, &self.key, &self.update.borrow())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::runtime_edit::test_edit::with;
    use super::*;

    const P: &str = "/etc/docker/daemon.json";

    fn obj(s: &str) -> Map<String, Value> {
        serde_json::from_str(s).unwrap()
    }

    fn on(input: &str, cdi: CdiSetting) -> (Value, EditReport, Update) {
        let mut root = obj(input);
        let mut r = EditReport::default();
        let u = turn_on(&mut root, &with(|e| e.cdi = cdi), Path::new(P), &mut r).unwrap();
        (Value::Object(root), r, u)
    }

    fn back(input: &str, rec: Option<&Entry>) -> (Value, EditReport, Update) {
        let mut root = obj(input);
        let mut r = EditReport::default();
        let e = with(|e| {
            e.remove = true;
            e.cdi = CdiSetting::Default
        });
        let u = take_back(&mut root, &e, rec, Path::new(P), &mut r).unwrap();
        (Value::Object(root), r, u)
    }

    fn v(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn turned_on_where_unset_merged_into_features() {
        let (doc, r, u) = on(r#"{"features": {"buildkit": true}}"#, CdiSetting::Default);
        assert_eq!(doc, v(r#"{"features": {"buildkit": true, "cdi": true}}"#));
        assert!(r.needs_restart);
        assert_eq!(
            u,
            Update::Set(Entry {
                was: None,
                created_features: false
            })
        );
        let (doc, _, u) = on(r#"{"debug": true}"#, CdiSetting::Default);
        assert_eq!(doc, v(r#"{"debug": true, "features": {"cdi": true}}"#));
        assert_eq!(
            u,
            Update::Set(Entry {
                was: None,
                created_features: true
            })
        );
        // Already on (whoever did it): nothing to change or record.
        let (doc, r, u) = on(r#"{"features": {"cdi": true}}"#, CdiSetting::On);
        assert_eq!(doc, v(r#"{"features": {"cdi": true}}"#));
        assert_eq!((r, u), (EditReport::default(), Update::Keep));
        // --no-cdi: nothing at all.
        let (doc, r, u) = on(r#"{}"#, CdiSetting::Leave);
        assert_eq!((doc, r, u), (v("{}"), EditReport::default(), Update::Keep));
    }

    #[test]
    fn an_admins_false_is_kept_unless_cdi_is_asked_for() {
        let (doc, r, u) = on(
            r#"{"features": {"cdi": false, "buildkit": true}}"#,
            CdiSetting::Default,
        );
        assert_eq!(doc, v(r#"{"features": {"cdi": false, "buildkit": true}}"#));
        assert_eq!(u, Update::Keep);
        assert!(r.lines.is_empty());
        assert!(
            r.kept[0].starts_with("features.cdi = false: an admin's setting, kept"),
            "{r:?}"
        );
        assert!(r.kept[0].contains("--cdi"), "{r:?}");
        // --cdi replaces it, in place, and records what it was.
        let (doc, r, u) = on(
            r#"{"features": {"cdi": false, "buildkit": true}}"#,
            CdiSetting::On,
        );
        assert_eq!(doc, v(r#"{"features": {"cdi": true, "buildkit": true}}"#));
        assert_eq!(
            doc["features"].as_object().unwrap().keys().next().unwrap(),
            "cdi"
        );
        assert!(r.lines[0].contains("was false"), "{r:?}");
        let Update::Set(entry) = u else {
            panic!("{u:?}")
        };
        assert_eq!(entry.was, Some(json!(false)));
        // --remove puts the false back.
        let (doc, r, u) = back(&doc.to_string(), Some(&entry));
        assert_eq!(doc, v(r#"{"features": {"cdi": false, "buildkit": true}}"#));
        assert_eq!(u, Update::Forget);
        assert!(r.lines[0].contains("false again"), "{r:?}");
    }

    #[test]
    fn only_a_recorded_true_is_taken_back() {
        let ours = Entry {
            was: None,
            created_features: true,
        };
        // Ours, still true: removed, with the features object we made.
        let (doc, _, u) = back(r#"{"debug": 1, "features": {"cdi": true}}"#, Some(&ours));
        assert_eq!((doc, u), (v(r#"{"debug": 1}"#), Update::Forget));
        // We made features, the admin added to it since: it stays.
        let (doc, _, _) = back(
            r#"{"features": {"cdi": true, "buildkit": false}}"#,
            Some(&ours),
        );
        assert_eq!(doc, v(r#"{"features": {"buildkit": false}}"#));
        // The admin's features, emptied by our removal: kept, empty.
        let theirs_features = Entry {
            was: None,
            created_features: false,
        };
        let (doc, _, _) = back(r#"{"features": {"cdi": true}}"#, Some(&theirs_features));
        assert_eq!(doc, v(r#"{"features": {}}"#));
        // Not recorded: left, and said so (the control of the first case).
        let (doc, r, u) = back(r#"{"features": {"cdi": true}}"#, None);
        assert_eq!(
            (doc, u),
            (v(r#"{"features": {"cdi": true}}"#), Update::Keep)
        );
        assert!(r.kept[0].contains("not set by amd-ctk"), "{r:?}");
        // Recorded, but the admin set it to false since: left, forgotten.
        let (doc, r, u) = back(r#"{"features": {"cdi": false}}"#, Some(&ours));
        assert_eq!(
            (doc, u),
            (v(r#"{"features": {"cdi": false}}"#), Update::Forget)
        );
        assert!(r.kept[0].contains("changed since"), "{r:?}");
        assert!(r.lines.is_empty());
        // Recorded, gone already: forgotten quietly.
        let (_, r, u) = back(r#"{}"#, Some(&ours));
        assert_eq!((r, u), (EditReport::default(), Update::Forget));
    }

    #[test]
    fn record_plans() {
        let p = Path::new("/r/docker-cdi.json");
        let e = Entry {
            was: Some(json!(false)),
            created_features: false,
        };
        let (c, r) = plan(None, p, "/etc/docker/daemon.json", &Update::Set(e.clone())).unwrap();
        let Change::Write(bytes) = c else {
            panic!("{c:?}")
        };
        assert!(r.lines[0].starts_with("recorded"), "{r:?}");
        assert_eq!(
            serde_json::from_slice::<Value>(&bytes).unwrap(),
            json!({"version": 1, "features-cdi": {"/etc/docker/daemon.json": {"was": false, "created-features": false}}})
        );
        // Same again: unchanged; another file added; forgetting the last deletes.
        let same = plan(Some(&bytes), p, "/etc/docker/daemon.json", &Update::Set(e)).unwrap();
        assert_eq!(same.0, Change::Unchanged);
        assert_eq!(
            plan(Some(&bytes), p, "/x.json", &Update::Forget).unwrap().0,
            Change::Unchanged
        );
        let gone = plan(Some(&bytes), p, "/etc/docker/daemon.json", &Update::Forget).unwrap();
        assert_eq!(gone.0, Change::Delete);
        // A record that is not ours stops the run, naming it.
        for bad in [
            &b"{\"version\": 1, \"x\": 2}"[..],
            b"[]",
            b"{\"version\": 7}",
        ] {
            let err = plan(Some(bad), p, "/k", &Update::Forget)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("/r/docker-cdi.json"), "{err}");
        }
    }
}
