//! Docker: `/etc/docker/daemon.json`; [`Docker`] is the engine of
//! engine_table's `docker` row, [`plan`] its planner.
//!
//! Adds `runtimes.amd = {"path": "amd-container-runtime"}`, optionally
//! `default-runtime: "amd"`, and `features.cdi: true` unless `--no-cdi`
//! (docker_cdi: its rules and the record that makes it ours); `--remove`
//! takes away exactly those. Every other key, and the key order, survive.
//!
//! A `runtimes.amd` is ours when its `path` is amd-container-runtime (any
//! directory) or the `--runtime-path` given. Anyone else's `runtimes.amd` is
//! never replaced (configure is refused) nor removed (`--remove` leaves it,
//! and a `default-runtime: "amd"` that names it, and says so).

use super::docker_cdi::{self, Entry, Update};
use super::engine::{EditReport, Engine, FileEdit, Plan, Settings};
use super::error::{ConfigureError, EditError};
use super::file_edit::{Change, FileOutcome};
use super::runtime_edit::{DefaultRuntime, RuntimeEdit, NOT_OURS_HINT, RUNTIME_NAME};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG: &str = "/etc/docker/daemon.json";

fn not_object(path: &Path, key: &str) -> ConfigureError {
    ConfigureError::shape(path, &format!("{key:?}"), "a JSON object")
}

/// The indentation of the file's first indented line (tabs or spaces),
/// else four spaces.
fn indent_of(text: &str) -> String {
    text.lines()
        .skip(1)
        .map(|l| {
            l.chars()
                .take_while(|c| *c == ' ' || *c == '\t')
                .collect::<String>()
        })
        .find(|w| !w.is_empty())
        .unwrap_or_else(|| "    ".to_string())
}

/// Plans the edit of daemon.json (`None`: the file does not exist);
/// `recorded`: what the record says amd-ctk did to its features.cdi. Returns,
/// with the change, what the record must learn.
pub fn plan(
    current: Option<&[u8]>,
    edit: &RuntimeEdit,
    path: &Path,
    recorded: Option<&Entry>,
) -> Result<(Change, EditReport, Update), ConfigureError> {
    let text = match current {
        None => "",
        Some(b) => std::str::from_utf8(b).map_err(|e| ConfigureError::not_utf8(path, e))?,
    };
    let mut doc: Value = if text.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(text).map_err(|source| ConfigureError::Json {
            path: path.to_path_buf(),
            source,
        })?
    };
    let root = doc
        .as_object_mut()
        .ok_or_else(|| ConfigureError::shape(path, "the top level", "a JSON object"))?;
    let mut changes = EditReport::default();
    let update = if edit.remove {
        remove(root, edit, path, &mut changes)?;
        docker_cdi::take_back(root, edit, recorded, path, &mut changes)?
    } else {
        configure(root, edit, path, &mut changes)?;
        docker_cdi::turn_on(root, edit, path, &mut changes)?
    };
    if changes.lines.is_empty() {
        return Ok((Change::Unchanged, changes, update));
    }
    let indent = indent_of(text);
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(&doc, &mut ser).map_err(|source| ConfigureError::Serialize {
        path: path.to_path_buf(),
        source,
    })?;
    out.push(b'\n');
    Ok((Change::Write(out), changes, update))
}

/// Whose `runtimes.amd` this is.
enum Owner {
    Absent,
    Ours,
    /// Someone else's; the string describes what is there.
    Theirs(String),
}

fn owner(runtimes: Option<&Map<String, Value>>, edit: &RuntimeEdit) -> Owner {
    match runtimes.and_then(|r| r.get(RUNTIME_NAME)) {
        None => Owner::Absent,
        Some(entry) => match entry.get("path").and_then(Value::as_str) {
            Some(p) if edit.is_ours(p) => Owner::Ours,
            Some(p) => Owner::Theirs(format!("its path is {p:?}")),
            None => Owner::Theirs(format!("it is {entry}, without a path")),
        },
    }
}

fn configure(
    root: &mut Map<String, Value>,
    edit: &RuntimeEdit,
    path: &Path,
    changes: &mut EditReport,
) -> Result<(), ConfigureError> {
    let runtimes = root.entry("runtimes").or_insert_with(|| json!({}));
    let runtimes = runtimes
        .as_object_mut()
        .ok_or_else(|| not_object(path, "runtimes"))?;
    if let Owner::Theirs(found) = owner(Some(runtimes), edit) {
        return Err(EditError::NotOurs {
            file: path.to_path_buf(),
            entry: format!("runtimes.{RUNTIME_NAME}"),
            found,
            hint: NOT_OURS_HINT.to_string(),
        }
        .into());
    }
    match runtimes.get_mut(RUNTIME_NAME) {
        None => {
            runtimes.insert(RUNTIME_NAME.into(), json!({"path": edit.runtime_path}));
            changes.lines.push(format!(
                "added runtimes.{RUNTIME_NAME} = {{\"path\": {:?}}}",
                edit.runtime_path
            ));
        }
        Some(Value::Object(entry)) => {
            let old = entry.get("path").cloned();
            if old.as_ref().and_then(Value::as_str) != Some(edit.runtime_path) {
                entry.insert("path".into(), json!(edit.runtime_path));
                changes.lines.push(format!(
                    "set runtimes.{RUNTIME_NAME}.path = {:?} (was {})",
                    edit.runtime_path,
                    old.map_or("unset".to_string(), |v| v.to_string())
                ));
            }
        }
        // Not an object: `owner` saw no path, so it is not ours.
        Some(_) => {}
    }
    match edit.default {
        DefaultRuntime::Keep => {}
        DefaultRuntime::Set => {
            let old = root.get("default-runtime").cloned();
            if old.as_ref().and_then(Value::as_str) != Some(RUNTIME_NAME) {
                root.insert("default-runtime".into(), json!(RUNTIME_NAME));
                changes.lines.push(match old {
                    None => format!("set default-runtime = {RUNTIME_NAME:?}"),
                    Some(v) => format!(
                        "set default-runtime = {RUNTIME_NAME:?} (was {v}; the backup keeps it)"
                    ),
                });
            }
        }
        DefaultRuntime::Unset => unset_default(root, true, changes),
    }
    Ok(())
}

/// Docker's SIGHUP reload applies only keys that are present: a removed
/// key (default-runtime, or runtimes when it becomes empty) needs a restart.
/// `ours`: the runtime `amd` is ours (or gone), so a default naming it is.
fn unset_default(root: &mut Map<String, Value>, ours: bool, changes: &mut EditReport) {
    if root.get("default-runtime").and_then(Value::as_str) == Some(RUNTIME_NAME) {
        if !ours {
            changes.kept.push(format!(
                "default-runtime = {RUNTIME_NAME:?}: it names the runtime {RUNTIME_NAME:?} above, \
                 which is not ours"
            ));
            return;
        }
        root.shift_remove("default-runtime");
        changes.needs_restart = true;
        changes
            .lines
            .push(format!("removed default-runtime (was {RUNTIME_NAME:?})"));
    }
}

fn remove(
    root: &mut Map<String, Value>,
    edit: &RuntimeEdit,
    path: &Path,
    changes: &mut EditReport,
) -> Result<(), ConfigureError> {
    let mut ours = true;
    if let Some(runtimes) = root.get_mut("runtimes") {
        let map = runtimes
            .as_object_mut()
            .ok_or_else(|| not_object(path, "runtimes"))?;
        match owner(Some(map), edit) {
            Owner::Absent => {}
            Owner::Ours => {
                map.shift_remove(RUNTIME_NAME);
                changes
                    .lines
                    .push(format!("removed runtimes.{RUNTIME_NAME}"));
                if map.is_empty() {
                    root.shift_remove("runtimes");
                }
            }
            Owner::Theirs(found) => {
                ours = false;
                changes.kept.push(format!(
                    "runtimes.{RUNTIME_NAME}: not ours ({found}, not amd-container-runtime)"
                ));
            }
        }
    }
    unset_default(root, ours, changes);
    Ok(())
}

/// Docker: the runtime `amd` (and default, CDI) in daemon.json, then the
/// record of `features.cdi` (docker_cdi): both change or neither.
pub struct Docker<'a> {
    path: PathBuf,
    edit: RuntimeEdit<'a>,
    /// The record of features.cdi, when the edit touches it.
    cdi_record: Option<docker_cdi::Record>,
}

impl<'a> Docker<'a> {
    /// The edit of daemon.json `path`, with the record at `record` (read
    /// now, under its lock) when the edit touches features.cdi.
    pub fn new(
        path: PathBuf,
        edit: RuntimeEdit<'a>,
        record: &Path,
        dry_run: bool,
    ) -> Result<Docker<'a>, ConfigureError> {
        let cdi_record = docker_cdi::Record::open(record, &path, &edit, dry_run)?;
        Ok(Docker {
            path,
            edit,
            cdi_record,
        })
    }
}

/// The `docker` row of engine_table.
pub fn build<'a>(s: &'a Settings<'a>) -> Result<Box<dyn Engine + 'a>, ConfigureError> {
    let path = s
        .config
        .map_or_else(|| DEFAULT_CONFIG.into(), Path::to_path_buf);
    let record = docker_cdi::record_path(Path::new("/"));
    Ok(Box::new(Docker::new(
        path,
        s.edit.clone(),
        &record,
        s.dry_run,
    )?))
}

impl Engine for Docker<'_> {
    fn edits(&self) -> Result<Vec<FileEdit<'_>>, ConfigureError> {
        let path = &self.path;
        let edit = &self.edit;
        let record = self.cdi_record.as_ref();
        let planner: Plan<'_> = Box::new(move |cur| {
            let (change, report, update) = plan(cur, edit, path, record.and_then(|r| r.entry()))?;
            if let Some(r) = record {
                r.set_update(update);
            }
            Ok((change, report))
        });
        let mut edits = vec![FileEdit {
            path: self.path.clone(),
            backup: true,
            private: false,
            quiet_unchanged: false,
            plan: planner,
        }];
        edits.extend(record.and_then(docker_cdi::Record::file_edit));
        Ok(edits)
    }

    fn after(&self, done: &[(FileOutcome, EditReport)], _dry_run: bool) -> Vec<String> {
        let Some((FileOutcome::Written { .. }, changes)) = done.first() else {
            return Vec::new();
        };
        // Docker applies runtimes on SIGHUP; not every change (see configure).
        vec![if changes.needs_restart {
            "To apply: systemctl restart docker".to_string()
        } else {
            "To apply: systemctl restart docker, or without a restart: \
             kill -HUP $(cat /var/run/docker.pid)"
                .to_string()
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::super::file_edit::{self, testutil::TempDir, FileOutcome, Options};
    use super::super::runtime_edit::CdiSetting;
    use super::*;
    use std::fs;

    const P: &str = "/etc/docker/daemon.json";

    use super::super::runtime_edit::test_edit::{edit, with};

    /// Runs the plan on `input` (no record); returns the new text (`None`: unchanged).
    fn run(input: Option<&str>, e: &RuntimeEdit) -> Result<Option<String>, String> {
        run_recorded(input, e, None).map(|(t, _)| t)
    }

    /// [`run`] with what the record says; also returns the record's update.
    fn run_recorded(
        input: Option<&str>,
        e: &RuntimeEdit,
        recorded: Option<&Entry>,
    ) -> Result<(Option<String>, Update), String> {
        let (change, c, update) = match plan(input.map(str::as_bytes), e, Path::new(P), recorded) {
            Ok(r) => r,
            Err(e) => return Err(e.to_string()),
        };
        let text = match change {
            Change::Write(b) => {
                assert!(!c.lines.is_empty());
                Some(String::from_utf8(b).unwrap())
            }
            Change::Unchanged => {
                assert!(c.lines.is_empty());
                None
            }
            Change::Delete => unreachable!(),
        };
        Ok((text, update))
    }

    fn v(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    fn keys(s: &str) -> Vec<String> {
        v(s).as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn table() {
        let amd = r#"{"path": "amd-container-runtime"}"#;
        // (name, input, edit, expected JSON or None for "no change")
        let cases: Vec<(&str, Option<&str>, RuntimeEdit, Option<String>)> = vec![
            ("missing file", None, edit(), Some(format!(r#"{{"runtimes": {{"amd": {amd}}}}}"#))),
            ("empty file", Some(""), edit(), Some(format!(r#"{{"runtimes": {{"amd": {amd}}}}}"#))),
            ("blank file", Some(" \n"), edit(), Some(format!(r#"{{"runtimes": {{"amd": {amd}}}}}"#))),
            (
                "unknown keys kept in order",
                Some(r#"{"zeta": 1, "log-driver": "journald", "x-custom": {"deep": [1, 2]}, "alpha": null}"#),
                edit(),
                Some(format!(
                    r#"{{"zeta": 1, "log-driver": "journald", "x-custom": {{"deep": [1, 2]}}, "alpha": null, "runtimes": {{"amd": {amd}}}}}"#
                )),
            ),
            (
                "other runtimes kept",
                Some(r#"{"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}, "crun": {"path": "/usr/bin/crun"}}}"#),
                edit(),
                Some(format!(
                    r#"{{"runtimes": {{"nvidia": {{"path": "nvidia-container-runtime", "runtimeArgs": []}}, "crun": {{"path": "/usr/bin/crun"}}, "amd": {amd}}}}}"#
                )),
            ),
            (
                "existing features kept with --cdi",
                Some(r#"{"features": {"buildkit": true, "containerd-snapshotter": false}}"#),
                with(|e| e.cdi = CdiSetting::On),
                Some(format!(
                    r#"{{"features": {{"buildkit": true, "containerd-snapshotter": false, "cdi": true}}, "runtimes": {{"amd": {amd}}}}}"#
                )),
            ),
            (
                "cdi false becomes true in place",
                Some(r#"{"features": {"cdi": false, "buildkit": true}, "runtimes": {"amd": {"path": "amd-container-runtime"}}}"#),
                with(|e| e.cdi = CdiSetting::On),
                Some(r#"{"features": {"cdi": true, "buildkit": true}, "runtimes": {"amd": {"path": "amd-container-runtime"}}}"#.into()),
            ),
            (
                "nvidia default replaced with --set-as-default",
                Some(r#"{"default-runtime": "nvidia", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}"#),
                with(|e| e.default = DefaultRuntime::Set),
                Some(format!(
                    r#"{{"default-runtime": "amd", "runtimes": {{"nvidia": {{"path": "nvidia-container-runtime"}}, "amd": {amd}}}}}"#
                )),
            ),
            (
                "--unset-as-default leaves another default alone",
                Some(r#"{"default-runtime": "nvidia", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}, "amd": {"path": "amd-container-runtime"}}}"#),
                with(|e| e.default = DefaultRuntime::Unset),
                None,
            ),
            (
                "--unset-as-default removes amd as default",
                Some(r#"{"default-runtime": "amd", "debug": true, "runtimes": {"amd": {"path": "amd-container-runtime"}}}"#),
                with(|e| e.default = DefaultRuntime::Unset),
                Some(r#"{"debug": true, "runtimes": {"amd": {"path": "amd-container-runtime"}}}"#.into()),
            ),
            (
                "already configured: no change",
                Some(r#"{"runtimes": {"amd": {"path": "amd-container-runtime"}}, "default-runtime": "amd", "features": {"cdi": true}}"#),
                with(|e| {
                    e.default = DefaultRuntime::Set;
                    e.cdi = CdiSetting::On
                }),
                None,
            ),
            (
                "our entry's path updated, its other keys kept",
                Some(r#"{"runtimes": {"amd": {"path": "/old/amd-container-runtime", "runtimeArgs": ["--x"]}}}"#),
                edit(),
                Some(r#"{"runtimes": {"amd": {"path": "amd-container-runtime", "runtimeArgs": ["--x"]}}}"#.into()),
            ),
            (
                "--runtime-path",
                None,
                with(|e| e.runtime_path = "/opt/amd/bin/amd-container-runtime"),
                Some(r#"{"runtimes": {"amd": {"path": "/opt/amd/bin/amd-container-runtime"}}}"#.into()),
            ),
            (
                "--remove takes only ours",
                Some(r#"{"default-runtime": "amd", "runtimes": {"nvidia": {"path": "n"}, "amd": {"path": "amd-container-runtime"}}, "features": {"cdi": true, "buildkit": true}}"#),
                with(|e| e.remove = true),
                Some(r#"{"runtimes": {"nvidia": {"path": "n"}}, "features": {"cdi": true, "buildkit": true}}"#.into()),
            ),
            (
                "--remove leaves a features.cdi amd-ctk has no record of",
                Some(r#"{"runtimes": {"amd": {"path": "amd-container-runtime"}}, "features": {"cdi": true, "buildkit": true}}"#),
                with(|e| {
                    e.remove = true;
                    e.cdi = CdiSetting::On
                }),
                Some(r#"{"features": {"cdi": true, "buildkit": true}}"#.into()),
            ),
            (
                "default: features.cdi turned on, merged",
                Some(r#"{"features": {"buildkit": true}}"#),
                with(|e| e.cdi = CdiSetting::Default),
                Some(format!(
                    r#"{{"features": {{"buildkit": true, "cdi": true}}, "runtimes": {{"amd": {amd}}}}}"#
                )),
            ),
            (
                "default: an admin's features.cdi false is kept",
                Some(r#"{"features": {"cdi": false}, "runtimes": {"amd": {"path": "amd-container-runtime"}}}"#),
                with(|e| e.cdi = CdiSetting::Default),
                None,
            ),
            (
                "--remove keeps another default runtime",
                Some(r#"{"default-runtime": "nvidia", "runtimes": {"amd": {"path": "amd-container-runtime"}}}"#),
                with(|e| e.remove = true),
                Some(r#"{"default-runtime": "nvidia"}"#.into()),
            ),
            ("--remove on a missing file", None, with(|e| e.remove = true), None),
            ("--remove when absent", Some(r#"{"debug": true}"#), with(|e| e.remove = true), None),
        ];
        for (name, input, e, want) in cases {
            let got = run(input, &e).unwrap_or_else(|err| panic!("{name}: {err}"));
            match (&got, &want) {
                (None, None) => {}
                (Some(g), Some(w)) => {
                    assert_eq!(v(g), v(w), "{name}: {g}");
                    assert_eq!(keys(g), keys(w), "{name}: key order");
                    assert!(g.ends_with("}\n"), "{name}");
                }
                _ => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn foreign_amd_runtime_is_never_replaced_or_removed() {
        let foreign = r#"{"default-runtime": "amd", "runtimes": {"amd": {"path": "/opt/vendor/other-runtime"}}}"#;
        // --remove (with every option) leaves it, and the default naming it.
        for e in [
            with(|e| e.remove = true),
            with(|e| {
                e.remove = true;
                e.cdi = CdiSetting::On
            }),
        ] {
            let (change, changes, _) =
                plan(Some(foreign.as_bytes()), &e, Path::new(P), None).unwrap();
            assert_eq!(change, Change::Unchanged);
            assert_eq!(changes.kept.len(), 2, "{changes:?}");
            assert!(
                changes.kept[0].contains("not ours (its path is \"/opt/vendor/other-runtime\""),
                "{changes:?}"
            );
            assert!(
                changes.kept[1].starts_with("default-runtime"),
                "{changes:?}"
            );
        }
        // Configure (any variant) is refused, naming the entry and what is there.
        for e in [
            edit(),
            with(|e| e.default = DefaultRuntime::Set),
            with(|e| e.default = DefaultRuntime::Unset),
        ] {
            let err = run(Some(foreign), &e).unwrap_err();
            assert!(
                err.starts_with("/etc/docker/daemon.json: runtimes.amd is not ours (its path is \"/opt/vendor/other-runtime\")"),
                "{err}"
            );
            assert!(err.contains("--runtime-path"), "{err}");
        }
        // Not an object, or without a path: not ours either.
        for odd in [
            r#"{"runtimes": {"amd": "x"}}"#,
            r#"{"runtimes": {"amd": {"runtimeArgs": []}}}"#,
        ] {
            assert!(
                run(Some(odd), &edit()).unwrap_err().contains("not ours"),
                "{odd}"
            );
            assert_eq!(run(Some(odd), &with(|e| e.remove = true)).unwrap(), None);
        }
        // Ours under another directory or another --runtime-path is ours.
        let elsewhere = r#"{"runtimes": {"amd": {"path": "/opt/amd/bin/amd-container-runtime"}}}"#;
        assert_eq!(
            v(&run(Some(elsewhere), &with(|e| e.remove = true))
                .unwrap()
                .unwrap()),
            json!({})
        );
        let custom =
            r#"{"runtimes": {"amd": {"path": "/opt/x/my-amd-shim"}, "runc": {"path": "runc"}}}"#;
        assert_eq!(
            v(&run(
                Some(custom),
                &with(|e| {
                    e.remove = true;
                    e.runtime_path = "/opt/x/my-amd-shim"
                })
            )
            .unwrap()
            .unwrap()),
            json!({"runtimes": {"runc": {"path": "runc"}}})
        );
        // An empty runtimes object of the user's is not dropped along the way.
        let empty = r#"{"runtimes": {}, "default-runtime": "amd"}"#;
        assert_eq!(
            v(&run(Some(empty), &with(|e| e.remove = true))
                .unwrap()
                .unwrap()),
            json!({"runtimes": {}})
        );
    }

    #[test]
    fn errors_name_file_and_position() {
        for (input, needle) in [
            (
                "{\n  \"debug\": true,\n  \"runtimes\": {\n}",
                "line 4 column 1",
            ),
            ("{\n  \"debug\": tru\n}", "line 3"),
            ("{\"a\": 1,}", "line 1 column 9"),
        ] {
            let err = run(Some(input), &edit()).unwrap_err();
            assert!(
                err.starts_with("/etc/docker/daemon.json: not valid JSON"),
                "{err}"
            );
            assert!(err.contains(needle), "{err}");
        }
        for (input, needle) in [
            ("[]", "not a JSON object"),
            (r#"{"runtimes": []}"#, "\"runtimes\" is not a JSON object"),
        ] {
            let err = run(Some(input), &edit()).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        let err = run(
            Some(r#"{"features": 1}"#),
            &with(|e| e.cdi = CdiSetting::On),
        )
        .unwrap_err();
        assert!(err.contains("\"features\" is not a JSON object"), "{err}");
    }

    #[test]
    fn keeps_indentation() {
        let input = "{\n\t\"debug\": true\n}\n";
        let got = run(Some(input), &edit()).unwrap().unwrap();
        assert!(
            got.starts_with("{\n\t\"debug\": true,\n\t\"runtimes\": {\n\t\t\"amd\""),
            "{got}"
        );
        let input = "{\n  \"debug\": true\n}\n";
        let got = run(Some(input), &edit()).unwrap().unwrap();
        assert!(
            got.starts_with("{\n  \"debug\": true,\n  \"runtimes\": {\n    \"amd\""),
            "{got}"
        );
        let got = run(None, &edit()).unwrap().unwrap();
        assert_eq!(
            got,
            "{\n    \"runtimes\": {\n        \"amd\": {\n            \"path\": \"amd-container-runtime\"\n        }\n    }\n}\n"
        );
    }

    #[test]
    fn remove_after_configure_restores_the_original() {
        let originals = [
            r#"{"log-level": "warn", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}, "storage-driver": "overlay2"}"#,
            r#"{"default-runtime": "runc", "features": {"buildkit": true}}"#,
            r#"{}"#,
        ];
        for original in originals {
            for cdi in [CdiSetting::Leave, CdiSetting::Default, CdiSetting::On] {
                let (configured, update) = run_recorded(
                    Some(original),
                    &with(|e| {
                        e.default = DefaultRuntime::Keep;
                        e.cdi = cdi
                    }),
                    None,
                )
                .unwrap();
                let configured = configured.unwrap();
                let recorded = match update {
                    Update::Set(entry) => Some(entry),
                    Update::Keep => None,
                    Update::Forget => unreachable!(),
                };
                assert_eq!(recorded.is_some(), cdi != CdiSetting::Leave, "{cdi:?}");
                let (removed, _) = run_recorded(
                    Some(&configured),
                    &with(|e| {
                        e.remove = true;
                        e.cdi = CdiSetting::Default
                    }),
                    recorded.as_ref(),
                )
                .unwrap();
                let removed = removed.unwrap();
                assert_eq!(v(&removed), v(original), "{original} cdi={cdi:?}");
                assert_eq!(keys(&removed), keys(original));
            }
        }
        // With --set-as-default on a file without a default.
        let original = r#"{"runtimes": {"nvidia": {"path": "n"}}, "debug": false}"#;
        let configured = run(Some(original), &with(|e| e.default = DefaultRuntime::Set))
            .unwrap()
            .unwrap();
        let removed = run(Some(&configured), &with(|e| e.remove = true))
            .unwrap()
            .unwrap();
        assert_eq!(v(&removed), v(original));
    }

    fn apply(path: &Path, e: &RuntimeEdit) -> Result<FileOutcome, ConfigureError> {
        let opts = Options {
            dry_run: false,
            backup: true,
            private: false,
        };
        file_edit::apply(path, opts, |cur| {
            plan(cur, e, path, None).map(|(c, r, _)| (c, r))
        })
        .map(|(o, _)| o)
    }

    #[test]
    fn invalid_file_is_left_byte_identical() {
        let d = TempDir::new("docker-invalid");
        let f = d.path().join("daemon.json");
        let bad = b"{\n  \"debug\": true,\n  // comment\n}\n";
        fs::write(&f, bad).unwrap();
        let err = apply(&f, &edit()).unwrap_err().to_string();
        assert!(err.contains("daemon.json: not valid JSON"), "{err}");
        assert!(err.contains("line 3 column 3"), "{err}");
        assert_eq!(fs::read(&f).unwrap(), bad);
        assert_eq!(d.names(), ["daemon.json"], "no backup, no temp file");
    }

    #[test]
    fn no_change_does_not_rewrite() {
        let d = TempDir::new("docker-noop");
        let f = d.path().join("daemon.json");
        let text = "{\"runtimes\":{\"amd\":{\"path\":\"amd-container-runtime\"}}}";
        fs::write(&f, text).unwrap();
        let before = fs::metadata(&f).unwrap().modified().unwrap();
        assert_eq!(apply(&f, &edit()).unwrap(), FileOutcome::Unchanged);
        assert_eq!(fs::read_to_string(&f).unwrap(), text);
        assert_eq!(fs::metadata(&f).unwrap().modified().unwrap(), before);
        assert_eq!(d.names(), ["daemon.json"]);
    }

    #[test]
    fn concurrent_runs_keep_both_edits() {
        for round in 0..10 {
            let d = TempDir::new("docker-race");
            let f = d.path().join("daemon.json");
            fs::write(&f, "{\"debug\": true}\n").unwrap();
            let edits = [
                with(|e| e.cdi = CdiSetting::On),
                with(|e| e.default = DefaultRuntime::Set),
            ];
            std::thread::scope(|s| {
                for e in &edits {
                    let f = &f;
                    s.spawn(move || {
                        file_edit::apply(
                            f,
                            Options {
                                dry_run: false,
                                backup: true,
                                private: false,
                            },
                            |cur| {
                                std::thread::sleep(std::time::Duration::from_millis(2));
                                plan(cur, e, f, None).map(|(c, r, _)| (c, r))
                            },
                        )
                        .unwrap()
                    });
                }
            });
            // Either run may go first; both edits must be there.
            let sorted = |text: &str| {
                let mut m = v(text).as_object().unwrap().clone();
                m.sort_keys();
                m
            };
            assert_eq!(
                sorted(&fs::read_to_string(&f).unwrap()),
                sorted(
                    r#"{"debug": true, "features": {"cdi": true}, "runtimes": {"amd": {"path": "amd-container-runtime"}}, "default-runtime": "amd"}"#
                ),
                "round {round}"
            );
            assert_eq!(
                fs::read_to_string(d.path().join("daemon.json.bak")).unwrap(),
                "{\"debug\": true}\n"
            );
        }
    }
}
