//! containerd: `/etc/containerd/config.toml`, config versions 2 and 3 (and 1);
//! [`Containerd`] is the engine of engine_table's `containerd` row, [`plan`]
//! its planner.
//!
//! Adds a runtime `amd`: the runc v2 shim with `options.BinaryName` =
//! amd-container-runtime, its other settings copied from the existing runc
//! runtime (`SystemdCgroup` above all); optionally `default_runtime_name =
//! "amd"` and `enable_cdi = true`. The file is edited with toml_edit, so the
//! user's comments, key order and formatting survive.
//!
//! A runtime `amd` is ours when its `options.BinaryName` is
//! amd-container-runtime (any directory) or the `--runtime-path` given.
//! Anyone else's `amd` table is never overwritten (configure is refused) nor
//! removed (`--remove` leaves it, and an unmarked default naming it).
//!
//! containerd merges the files named by `imports` over this one (later files
//! win), so the runc runtime whose settings we copy may be there: its tables
//! in every imported file are merged in containerd's order. An import that
//! cannot be read, a pattern we cannot expand, or an import that configures
//! the same CRI plugin (containerd 1.x then ignores this file's section) is
//! reported as a warning (imports.rs).

mod glob;
mod imports;

use super::engine::{EditReport, Engine, FileEdit, Settings};
use super::error::{ConfigureError, EditError};
use super::file_edit::{Change, FileOutcome};
use super::runtime_edit::{CdiSetting, DefaultRuntime, RuntimeEdit, NOT_OURS_HINT, RUNTIME_NAME};
use super::toml_marks::{set, set_marked, unset_marked, was};
use super::toml_tables::{child, child_or_create, drop_if_emptied, fresh_copy, len_of, overlay};
use imports::{cri_plugin, load_imports, warn_about_imports, Imported};
use std::path::{Path, PathBuf};
use toml_edit::{DocumentMut, Item, Table, TableLike, Value};

pub const DEFAULT_CONFIG: &str = "/etc/containerd/config.toml";
const RUNC_V2: &str = "io.containerd.runc.v2";
/// The version written into a new (missing or empty) file: containerd 1.x
/// reads it and 2.x migrates it on load, like nvidia-ctk's default.
const NEW_FILE_VERSION: i64 = 2;

/// Plans the edit of config.toml (`None`: the file does not exist).
pub fn plan(
    current: Option<&[u8]>,
    edit: &RuntimeEdit,
    path: &std::path::Path,
) -> Result<(Change, EditReport), ConfigureError> {
    let text = match current {
        None => "",
        Some(b) => std::str::from_utf8(b).map_err(|e| ConfigureError::not_utf8(path, e))?,
    };
    let mut doc: DocumentMut = text.parse().map_err(|source| ConfigureError::Toml {
        path: path.to_path_buf(),
        source,
    })?;
    let mut changes = EditReport::default();
    let version = match doc.get("version") {
        None if doc.as_table().is_empty() => {
            if edit.remove {
                return Ok((Change::Unchanged, changes));
            }
            doc.insert("version", toml_edit::value(NEW_FILE_VERSION));
            changes
                .lines
                .push(format!("new config: version = {NEW_FILE_VERSION}"));
            NEW_FILE_VERSION
        }
        // containerd reads a file without `version` as version 1.
        None => 1,
        Some(item) => match item.as_integer() {
            Some(v @ 1..=3) => v,
            _ => {
                return Err(ConfigureError::Version {
                    path: path.to_path_buf(),
                    found: item.to_string().trim().to_string(),
                })
            }
        },
    };
    let plugin = cri_plugin(version);
    let plugin_at = format!("plugins.{plugin:?}");
    let containerd_at = format!("{plugin_at}.containerd");
    let runtimes_at = format!("{containerd_at}.runtimes");
    let amd_at = format!("{runtimes_at}.{RUNTIME_NAME}");
    let imports = if edit.remove {
        Vec::new()
    } else {
        load_imports(&doc, path, &mut changes.warnings)
    };
    let root: &mut dyn TableLike = doc.as_table_mut();
    if edit.remove {
        remove(root, edit, path, plugin, &mut changes)?;
    } else {
        let plugins = child_or_create(root, "plugins", "plugins", path)?;
        let cri = child_or_create(plugins, plugin, &plugin_at, path)?;
        if edit.cdi == CdiSetting::On {
            changes
                .lines
                .extend(set_marked(cri, "enable_cdi", Value::from(true), &plugin_at));
        }
        let containerd = child_or_create(cri, "containerd", &containerd_at, path)?;
        let owner = containerd
            .get("runtimes")
            .and_then(Item::as_table_like)
            .map_or(Owner::Absent, |r| owner(r, edit));
        if let Owner::Theirs(found) = owner {
            return Err(EditError::NotOurs {
                file: path.to_path_buf(),
                entry: format!("[{amd_at}]"),
                found,
                hint: NOT_OURS_HINT.to_string(),
            }
            .into());
        }
        // The default in force: this file's, unless an import sets one.
        let default_name = imports
            .iter()
            .rev()
            .find_map(|i| i.containerd().and_then(|c| c.get("default_runtime_name")))
            .or_else(|| containerd.get("default_runtime_name"))
            .and_then(Item::as_str)
            .map(str::to_string);
        warn_about_imports(&imports, plugin, &mut changes.warnings);
        match edit.default {
            DefaultRuntime::Keep => {}
            DefaultRuntime::Set => changes.lines.extend(set_marked(
                containerd,
                "default_runtime_name",
                Value::from(RUNTIME_NAME),
                &containerd_at,
            )),
            DefaultRuntime::Unset => unset_default(containerd, &containerd_at, true, &mut changes),
        }
        let runtimes = child_or_create(containerd, "runtimes", &runtimes_at, path)?;
        configure_runtime(
            runtimes,
            &imports,
            edit,
            default_name.as_deref(),
            &amd_at,
            path,
            &mut changes,
        )?;
    }
    if changes.lines.is_empty() {
        return Ok((Change::Unchanged, changes));
    }
    changes.needs_restart = true;
    Ok((Change::Write(doc.to_string().into_bytes()), changes))
}

/// Whose runtime `amd` is.
enum Owner {
    Absent,
    Ours,
    /// Someone else's; the string says what is there.
    Theirs(String),
}

fn owner(runtimes: &dyn TableLike, edit: &RuntimeEdit) -> Owner {
    let Some(amd) = runtimes.get(RUNTIME_NAME) else {
        return Owner::Absent;
    };
    let binary = amd.get("options").and_then(|o| o.get("BinaryName"));
    match binary.and_then(Item::as_str) {
        Some(b) if edit.is_ours(b) => Owner::Ours,
        Some(b) => Owner::Theirs(format!("options.BinaryName = {b:?}")),
        None => Owner::Theirs(match amd.get("runtime_type").and_then(Item::as_str) {
            Some(t) => format!("runtime_type = {t:?}, no options.BinaryName"),
            None => "no options.BinaryName".to_string(),
        }),
    }
}

/// The runtime `name` as containerd sees it: this file's table with the
/// imported files' tables merged over it, and the files it came from.
fn merged_runtime(
    runtimes: &dyn TableLike,
    imports: &[Imported],
    name: &str,
    path: &Path,
) -> Option<(Table, Vec<PathBuf>)> {
    let mut merged: Option<Table> = None;
    let mut from = Vec::new();
    let own = runtimes
        .get(name)
        .and_then(|i| i.as_table_like().map(|t| (i, t)));
    let theirs = imports.iter().filter_map(|imp| {
        let item = imp.runtimes()?.get(name)?;
        Some((imp.path.clone(), item, item.as_table_like()?))
    });
    for (file, item, table) in own
        .map(|(i, t)| (path.to_path_buf(), i, t))
        .into_iter()
        .chain(theirs)
    {
        match &mut merged {
            None => merged = Some(fresh_copy(table, item.as_table())),
            Some(m) => overlay(m, table),
        }
        if !from.contains(&file) {
            from.push(file);
        }
    }
    merged.map(|m| (m, from))
}

#[allow(clippy::too_many_arguments)]
fn configure_runtime(
    runtimes: &mut dyn TableLike,
    imports: &[Imported],
    edit: &RuntimeEdit,
    default_name: Option<&str>,
    amd_at: &str,
    path: &Path,
    changes: &mut EditReport,
) -> Result<(), ConfigureError> {
    let added = !runtimes.contains_key(RUNTIME_NAME);
    if added {
        // Settings from the runtime containerd uses now, if it is runc-like,
        // wherever they are: this file or the ones it imports.
        let candidates = default_name
            .filter(|n| *n != RUNTIME_NAME)
            .into_iter()
            .chain(["runc", "crun"]);
        let mut from = None;
        for name in candidates {
            if let Some((table, files)) = merged_runtime(runtimes, imports, name, path) {
                if table.get("runtime_type").and_then(Item::as_str) == Some(RUNC_V2) {
                    from = Some((name.to_string(), table, files));
                    break;
                }
            }
        }
        let table = match &from {
            Some((_, t, _)) => t.clone(),
            None => Table::new(),
        };
        runtimes.insert(RUNTIME_NAME, Item::Table(table));
        let source = match &from {
            Some((name, item, files)) => {
                if let Some(bin) = item
                    .get("options")
                    .and_then(|o| o.get("BinaryName"))
                    .and_then(Item::as_str)
                    .filter(|b| !b.is_empty())
                {
                    changes.notes.push(format!(
                        "runtime {name:?} runs {bin:?}: set runtime.low-level-runtime = {bin:?} in \
                         /etc/amd-container-toolkit/config.toml so amd-container-runtime runs it too"
                    ));
                }
                let in_files = if files.iter().all(|f| f.as_path() == path) {
                    String::new()
                } else {
                    let names: Vec<String> =
                        files.iter().map(|f| f.display().to_string()).collect();
                    format!(" (from {})", names.join(", "))
                };
                format!(", other settings copied from runtime {name:?}{in_files}")
            }
            None => String::new(),
        };
        changes.lines.push(format!(
            "added [{amd_at}] (runtime_type = {RUNC_V2:?}, options.BinaryName = {:?}{source})",
            edit.runtime_path
        ));
    }
    let amd = child(runtimes, RUNTIME_NAME, amd_at, path)?
        .ok_or_else(|| ConfigureError::shape(path, amd_at, "a table"))?;
    if let Some(old) = set(amd, "runtime_type", Value::from(RUNC_V2)) {
        if !added {
            changes.lines.push(format!(
                "set {amd_at}.runtime_type = {RUNC_V2:?}{}",
                was(old)
            ));
        }
    }
    let options = child_or_create(amd, "options", &format!("{amd_at}.options"), path)?;
    if let Some(old) = set(options, "BinaryName", Value::from(edit.runtime_path)) {
        if !added {
            changes.lines.push(format!(
                "set {amd_at}.options.BinaryName = {:?}{}",
                edit.runtime_path,
                was(old)
            ));
        }
    }
    if let Some(Item::Value(Value::InlineTable(t))) = amd.get_mut("options") {
        t.fmt();
    }
    Ok(())
}

/// Takes back `default_runtime_name = "amd"`: the value we replaced is
/// restored; an unmarked one is removed only if the runtime `amd` is ours
/// (`ours`; or gone), else it is someone else's choice and is reported.
fn unset_default(
    containerd: &mut dyn TableLike,
    containerd_at: &str,
    ours: bool,
    changes: &mut EditReport,
) {
    let line = unset_marked(
        containerd,
        "default_runtime_name",
        &Value::from(RUNTIME_NAME),
        ours,
        containerd_at,
    );
    let names_us = containerd
        .get("default_runtime_name")
        .and_then(Item::as_str)
        == Some(RUNTIME_NAME);
    match line {
        Some(l) => changes.lines.push(l),
        None if names_us && !ours => changes.kept.push(format!(
            "{containerd_at}.default_runtime_name = {RUNTIME_NAME:?}: it names the runtime \
             {RUNTIME_NAME:?}, which is not ours"
        )),
        None => {}
    }
}

fn remove(
    root: &mut dyn TableLike,
    edit: &RuntimeEdit,
    path: &std::path::Path,
    plugin: &str,
    changes: &mut EditReport,
) -> Result<(), ConfigureError> {
    let plugin_at = format!("plugins.{plugin:?}");
    let containerd_at = format!("{plugin_at}.containerd");
    let runtimes_at = format!("{containerd_at}.runtimes");
    let plugins_len = len_of(root, "plugins");
    let Some(plugins) = child(root, "plugins", "plugins", path)? else {
        return Ok(());
    };
    let cri_len = len_of(plugins, plugin);
    let Some(cri) = child(plugins, plugin, &plugin_at, path)? else {
        return Ok(());
    };
    if edit.cdi == CdiSetting::On {
        changes.lines.extend(unset_marked(
            cri,
            "enable_cdi",
            &Value::from(true),
            false,
            &plugin_at,
        ));
    }
    let containerd_len = len_of(cri, "containerd");
    if let Some(containerd) = child(cri, "containerd", &containerd_at, path)? {
        let owner = containerd
            .get("runtimes")
            .and_then(Item::as_table_like)
            .map_or(Owner::Absent, |r| owner(r, edit));
        let theirs = matches!(owner, Owner::Theirs(_));
        unset_default(containerd, &containerd_at, !theirs, changes);
        let runtimes_len = len_of(containerd, "runtimes");
        if let Some(runtimes) = child(containerd, "runtimes", &runtimes_at, path)? {
            match owner {
                Owner::Absent => {}
                Owner::Ours => {
                    runtimes.remove(RUNTIME_NAME);
                    changes
                        .lines
                        .push(format!("removed [{runtimes_at}.{RUNTIME_NAME}]"));
                }
                Owner::Theirs(found) => changes.kept.push(format!(
                    "[{runtimes_at}.{RUNTIME_NAME}]: not ours ({found}, not amd-container-runtime)"
                )),
            }
        }
        drop_if_emptied(containerd, "runtimes", runtimes_len);
    }
    drop_if_emptied(cri, "containerd", containerd_len);
    drop_if_emptied(plugins, plugin, cri_len);
    drop_if_emptied(root, "plugins", plugins_len);
    Ok(())
}

/// containerd: the runtime `amd` (and default, CDI) in config.toml.
pub struct Containerd<'a> {
    path: PathBuf,
    edit: RuntimeEdit<'a>,
}

/// The `containerd` row of engine_table.
pub fn build<'a>(s: &'a Settings<'a>) -> Result<Box<dyn Engine + 'a>, ConfigureError> {
    Ok(Box::new(Containerd {
        path: s
            .config
            .map_or_else(|| DEFAULT_CONFIG.into(), Path::to_path_buf),
        edit: s.edit.clone(),
    }))
}

impl Engine for Containerd<'_> {
    fn edits(&self) -> Result<Vec<FileEdit<'_>>, ConfigureError> {
        let path = &self.path;
        let edit = &self.edit;
        Ok(vec![FileEdit {
            path: self.path.clone(),
            backup: true,
            private: false,
            quiet_unchanged: false,
            plan: Box::new(move |cur| plan(cur, edit, path)),
        }])
    }

    fn after(&self, done: &[(FileOutcome, EditReport)], _dry_run: bool) -> Vec<String> {
        match done.first() {
            Some((FileOutcome::Written { .. }, _)) => {
                vec!["To apply: systemctl restart containerd".to_string()]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::file_edit::{self, testutil::TempDir, FileOutcome, Options};
    use super::*;
    use std::fs;
    use std::path::Path;

    /// Shaped like `containerd config default` of containerd 1.7, with comments.
    const V2: &str = r#"# containerd config, managed by hand.
disabled_plugins = []
version = 2

[plugins]

  # The CRI plugin.
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.8"   # pinned

    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      snapshotter = "overlayfs"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]

        # runc, with systemd cgroups
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          base_runtime_spec = ""
          privileged_without_host_devices = false
          runtime_type = "io.containerd.runc.v2"

          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            BinaryName = ""
            SystemdCgroup = true   # kubelet uses systemd

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]
          runtime_type = "io.containerd.kata.v2"

    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d"

  [plugins."io.containerd.internal.v1.opt"]
    path = "/opt/containerd"
"#;

    /// Shaped like `containerd config default` of containerd 2.x, with comments.
    const V3: &str = r#"version = 3
root = '/var/lib/containerd'

# CRI runtime settings
[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'

  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    # CDI is off here
    enable_cdi = false

    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'

      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes]
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
          runtime_type = 'io.containerd.runc.v2'
          sandboxer = 'podsandbox'

          [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
            SystemdCgroup = false

  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
"#;

    const P: &str = "/etc/containerd/config.toml";

    use super::super::runtime_edit::test_edit::{edit, with};

    /// The new text, or `None` for "no change".
    fn run(input: Option<&str>, e: &RuntimeEdit) -> Result<Option<String>, String> {
        match plan(input.map(str::as_bytes), e, Path::new(P)) {
            Ok((Change::Write(b), c)) => {
                assert!(!c.lines.is_empty());
                Ok(Some(String::from_utf8(b).unwrap()))
            }
            Ok((Change::Unchanged, c)) => {
                assert!(c.lines.is_empty(), "{c:?}");
                Ok(None)
            }
            Ok((Change::Delete, _)) => unreachable!(),
            Err(e) => Err(e.to_string()),
        }
    }

    fn doc(text: &str) -> DocumentMut {
        text.parse().unwrap()
    }

    /// The value at a dotted path of plain keys.
    fn at<'a>(d: &'a DocumentMut, keys: &[&str]) -> Option<&'a Item> {
        let mut item = d.as_item();
        for k in keys {
            item = item.get(k)?;
        }
        Some(item)
    }

    fn comments(text: &str) -> Vec<&str> {
        text.lines()
            .map(str::trim)
            .filter(|l| l.contains('#'))
            .map(|l| &l[l.find('#').unwrap()..])
            .collect()
    }

    #[test]
    fn v2_and_v3_keep_comments_and_copy_runc() {
        for (text, plugin, systemd) in [
            (V2, "io.containerd.grpc.v1.cri", true),
            (V3, "io.containerd.cri.v1.runtime", false),
        ] {
            let all = with(|e| {
                e.default = DefaultRuntime::Set;
                e.cdi = CdiSetting::On
            });
            let out = run(Some(text), &all).unwrap().unwrap();
            // Every comment and every original line survives.
            for c in comments(text) {
                assert!(out.contains(c), "{plugin}: comment {c:?} lost:\n{out}");
            }
            for line in text.lines() {
                let changed = line.contains("default_runtime_name") || line.contains("enable_cdi");
                assert!(
                    changed || out.contains(line),
                    "{plugin}: line {line:?} lost:\n{out}"
                );
            }
            let d = doc(&out);
            let cri = ["plugins", plugin];
            let amd = [&cri[..], &["containerd", "runtimes", "amd"]].concat();
            let get = |rest: &[&str]| at(&d, &[&amd[..], rest].concat()).cloned();
            assert_eq!(get(&["runtime_type"]).unwrap().as_str(), Some(RUNC_V2));
            assert_eq!(
                get(&["options", "BinaryName"]).unwrap().as_str(),
                Some("amd-container-runtime")
            );
            assert_eq!(
                get(&["options", "SystemdCgroup"]).unwrap().as_bool(),
                Some(systemd)
            );
            assert_eq!(
                at(
                    &d,
                    &[&cri[..], &["containerd", "default_runtime_name"]].concat()
                )
                .unwrap()
                .as_str(),
                Some("amd")
            );
            assert_eq!(
                at(&d, &[&cri[..], &["enable_cdi"]].concat())
                    .unwrap()
                    .as_bool(),
                Some(true)
            );
            // Other runtimes and plugins untouched.
            let runc = [
                &cri[..],
                &["containerd", "runtimes", "runc", "options", "SystemdCgroup"],
            ]
            .concat();
            assert_eq!(at(&d, &runc).unwrap().as_bool(), Some(systemd));
            // The new table sits right after the other runtimes, indented like them.
            let amd_header = out.lines().find(|l| l.contains(".runtimes.amd]")).unwrap();
            let runc_header = out.lines().find(|l| l.contains(".runtimes.runc]")).unwrap();
            assert_eq!(
                amd_header.len() - amd_header.trim_start().len(),
                runc_header.len() - runc_header.trim_start().len()
            );
            // Idempotent.
            assert_eq!(run(Some(&out), &all).unwrap(), None, "{plugin}");
            // --remove --cdi gives back the original byte for byte.
            let removed = run(
                Some(&out),
                &with(|e| {
                    e.remove = true;
                    e.cdi = CdiSetting::On
                }),
            )
            .unwrap()
            .unwrap();
            assert_eq!(removed, text, "{plugin}");
        }
    }

    #[test]
    fn set_and_unset_default_round_trip() {
        let set = run(Some(V2), &with(|e| e.default = DefaultRuntime::Set))
            .unwrap()
            .unwrap();
        assert!(
            set.contains("# amd-ctk: was \"runc\"\n      default_runtime_name = \"amd\""),
            "{set}"
        );
        // --unset-as-default puts back the previous default; the runtime stays.
        let unset = run(Some(&set), &with(|e| e.default = DefaultRuntime::Unset))
            .unwrap()
            .unwrap();
        let configured = run(Some(V2), &edit()).unwrap().unwrap();
        assert_eq!(unset, configured);
        // Another default is left alone by --unset-as-default.
        assert_eq!(
            run(
                Some(&configured),
                &with(|e| e.default = DefaultRuntime::Unset)
            )
            .unwrap(),
            None
        );
        // An unmarked "amd" default (set by hand) is removed.
        let by_hand = configured.replace(
            "default_runtime_name = \"runc\"",
            "default_runtime_name = \"amd\"",
        );
        let out = run(Some(&by_hand), &with(|e| e.remove = true))
            .unwrap()
            .unwrap();
        assert!(!out.contains("default_runtime_name"), "{out}");
        assert!(!out.contains(".runtimes.amd]"), "{out}");
    }

    #[test]
    fn users_own_cdi_setting_is_not_removed() {
        let text = V3.replace("enable_cdi = false", "enable_cdi = true");
        let configured = run(Some(&text), &with(|e| e.cdi = CdiSetting::On))
            .unwrap()
            .unwrap();
        let removed = run(
            Some(&configured),
            &with(|e| {
                e.remove = true;
                e.cdi = CdiSetting::On
            }),
        )
        .unwrap()
        .unwrap();
        assert_eq!(removed, text);
        assert!(removed.contains("enable_cdi = true"));
    }

    #[test]
    fn missing_or_empty_file_gets_a_version_2_config() {
        let want = "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.amd]\nruntime_type = \"io.containerd.runc.v2\"\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.amd.options]\nBinaryName = \"amd-container-runtime\"\n";
        for input in [None, Some(""), Some("\n")] {
            let out = run(input, &edit()).unwrap().unwrap();
            assert_eq!(out.trim(), want.trim(), "{input:?}");
            assert_eq!(
                run(Some(&out), &with(|e| e.remove = true))
                    .unwrap()
                    .unwrap()
                    .trim(),
                "version = 2"
            );
        }
        assert_eq!(run(None, &with(|e| e.remove = true)).unwrap(), None);
        assert_eq!(run(Some(""), &with(|e| e.remove = true)).unwrap(), None);
    }

    #[test]
    fn version_1_and_template_choice() {
        // No `version`: containerd reads it as version 1, plugin "cri".
        let v1 = "[plugins.cri.containerd]\n  default_runtime_name = \"runc\"\n  [plugins.cri.containerd.runtimes.runc]\n    runtime_type = \"io.containerd.runc.v2\"\n    options = { SystemdCgroup = true }\n";
        let out = run(Some(v1), &edit()).unwrap().unwrap();
        assert!(out.starts_with(v1), "{out}");
        let d = doc(&out);
        let opts = at(
            &d,
            &["plugins", "cri", "containerd", "runtimes", "amd", "options"],
        )
        .unwrap();
        assert_eq!(opts.get("SystemdCgroup").unwrap().as_bool(), Some(true));
        assert_eq!(
            opts.get("BinaryName").unwrap().as_str(),
            Some("amd-container-runtime")
        );
        // The default runtime is the template when it is runc-like (crun here) ...
        let crun = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\ndefault_runtime_name = \"crun\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crun]\nruntime_type = \"io.containerd.runc.v2\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crun.options]\nBinaryName = \"/usr/bin/crun\"\nSystemdCgroup = true\n";
        let (change, changes) = plan(Some(crun.as_bytes()), &edit(), Path::new(P)).unwrap();
        let Change::Write(out) = change else { panic!() };
        let d = doc(std::str::from_utf8(&out).unwrap());
        let cri = "io.containerd.grpc.v1.cri";
        let opts = at(
            &d,
            &["plugins", cri, "containerd", "runtimes", "amd", "options"],
        )
        .unwrap();
        assert_eq!(
            opts.get("BinaryName").unwrap().as_str(),
            Some("amd-container-runtime")
        );
        assert_eq!(opts.get("SystemdCgroup").unwrap().as_bool(), Some(true));
        assert!(
            changes.notes[0].contains("low-level-runtime = \"/usr/bin/crun\""),
            "{changes:?}"
        );
        // ... but not a non-runc shim (kata): runc is.
        let kata = V2.replace(
            "default_runtime_name = \"runc\"",
            "default_runtime_name = \"kata\"",
        );
        let d = doc(&run(Some(&kata), &edit()).unwrap().unwrap());
        let amd = at(&d, &["plugins", cri, "containerd", "runtimes", "amd"]).unwrap();
        assert_eq!(amd.get("runtime_type").unwrap().as_str(), Some(RUNC_V2));
        assert_eq!(
            amd.get("options")
                .unwrap()
                .get("SystemdCgroup")
                .unwrap()
                .as_bool(),
            Some(true)
        );
    }

    #[test]
    fn existing_amd_entry_is_updated_not_recopied() {
        let configured = run(Some(V3), &edit()).unwrap().unwrap();
        let custom = run(
            Some(&configured),
            &with(|e| e.runtime_path = "/opt/amd/bin/amd-container-runtime"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            custom,
            configured.replace(
                "BinaryName = \"amd-container-runtime\"",
                "BinaryName = \"/opt/amd/bin/amd-container-runtime\""
            )
        );
    }

    #[test]
    fn foreign_amd_table_is_never_overwritten_or_removed() {
        let foreign = format!(
            "{V2}\n        [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.amd]\n          \
             runtime_type = \"io.containerd.runc.v2\"\n          \
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.amd.options]\n            \
             BinaryName = \"/opt/vendor/other-runtime\"\n"
        );
        for e in [
            edit(),
            with(|e| e.default = DefaultRuntime::Set),
            with(|e| e.cdi = CdiSetting::On),
        ] {
            let err = run(Some(&foreign), &e).unwrap_err();
            assert!(
                err.contains(".runtimes.amd] is not ours (options.BinaryName = \"/opt/vendor/other-runtime\")"),
                "{err}"
            );
            assert!(err.contains("left as it is"), "{err}");
        }
        let (change, changes) = plan(
            Some(foreign.as_bytes()),
            &with(|e| e.remove = true),
            Path::new(P),
        )
        .unwrap();
        assert_eq!(change, Change::Unchanged);
        assert!(changes.kept[0].contains("not ours"), "{changes:?}");
        // An unmarked default naming their runtime stays too; ours is taken.
        let theirs_default = foreign.replace(
            "default_runtime_name = \"runc\"",
            "default_runtime_name = \"amd\"",
        );
        let (change, changes) = plan(
            Some(theirs_default.as_bytes()),
            &with(|e| e.remove = true),
            Path::new(P),
        )
        .unwrap();
        assert_eq!(change, Change::Unchanged);
        assert_eq!(changes.kept.len(), 2, "{changes:?}");
        // A table without BinaryName (kata called amd) is not ours either.
        let kata = V2.replace(".runtimes.kata]", ".runtimes.amd]");
        assert!(run(Some(&kata), &edit()).unwrap_err().contains(
            "not ours (runtime_type = \"io.containerd.kata.v2\", no options.BinaryName)"
        ));
        assert_eq!(run(Some(&kata), &with(|e| e.remove = true)).unwrap(), None);
        // Ours under another directory is ours.
        let configured = run(
            Some(V2),
            &with(|e| e.runtime_path = "/opt/amd/bin/amd-container-runtime"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            run(Some(&configured), &with(|e| e.remove = true))
                .unwrap()
                .unwrap(),
            V2
        );
    }

    #[test]
    fn runc_options_are_copied_from_imported_files() {
        let d = TempDir::new("ctd-imports");
        let main = d.path().join("config.toml");
        let conf_d = d.path().join("conf.d");
        fs::create_dir_all(&conf_d).unwrap();
        let text = "version = 2\nimports = [\"conf.d/*.toml\", \"missing.toml\"]\n\n\
            [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n\
            runtime_type = \"io.containerd.runc.v2\"\n\
            [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n\
            SystemdCgroup = false\nNoPivotRoot = true\n";
        // Later files win: 20-systemd overrides 10-base; 30-other is not runc.
        fs::write(
            conf_d.join("10-base.toml"),
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nSystemdCgroup = false\nRoot = \"/run/runc\"\n",
        )
        .unwrap();
        fs::write(
            conf_d.join("20-systemd.toml"),
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nSystemdCgroup = true\n",
        )
        .unwrap();
        fs::write(conf_d.join("30-bad.toml"), "version = 2\n[plugins\n").unwrap();
        fs::write(conf_d.join("notes.txt"), "not TOML").unwrap();
        let (change, changes) = plan(Some(text.as_bytes()), &edit(), &main).unwrap();
        let Change::Write(out) = change else {
            panic!("{changes:?}")
        };
        let out = String::from_utf8(out).unwrap();
        let dd = doc(&out);
        let opts = at(
            &dd,
            &[
                "plugins",
                "io.containerd.grpc.v1.cri",
                "containerd",
                "runtimes",
                "amd",
                "options",
            ],
        )
        .unwrap();
        assert_eq!(opts.get("SystemdCgroup").unwrap().as_bool(), Some(true));
        assert_eq!(opts.get("NoPivotRoot").unwrap().as_bool(), Some(true));
        assert_eq!(opts.get("Root").unwrap().as_str(), Some("/run/runc"));
        assert_eq!(
            opts.get("BinaryName").unwrap().as_str(),
            Some("amd-container-runtime")
        );
        assert!(
            changes.lines[0].contains("20-systemd.toml"),
            "{:?}",
            changes.lines
        );
        let w = changes.warnings.join("\n");
        assert!(
            w.contains("30-bad.toml") && w.contains("not valid TOML"),
            "{w}"
        );
        assert!(w.contains("missing.toml"), "{w}");
        assert!(
            w.contains("10-base.toml configures [plugins.\"io.containerd.grpc.v1.cri\"] too"),
            "{w}"
        );
        // The imported files are not touched.
        assert_eq!(
            fs::read_to_string(conf_d.join("20-systemd.toml")).unwrap(),
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nSystemdCgroup = true\n"
        );
        // runc only in an import, a default set there: still found.
        let only = "version = 2\nimports = [\"conf.d/20-systemd.toml\"]\n";
        fs::write(
            conf_d.join("20-systemd.toml"),
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\ndefault_runtime_name = \"crun\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crun]\nruntime_type = \"io.containerd.runc.v2\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crun.options]\nSystemdCgroup = true\nBinaryName = \"crun\"\n",
        )
        .unwrap();
        let (change, changes) = plan(Some(only.as_bytes()), &edit(), &main).unwrap();
        let Change::Write(out) = change else { panic!() };
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("SystemdCgroup = true"), "{out}");
        assert!(
            changes.lines.iter().any(|l| l.contains("runtime \"crun\"")),
            "{changes:?}"
        );
        assert!(changes.notes[0].contains("low-level-runtime = \"crun\""));
    }

    #[test]
    fn errors() {
        for (input, needle) in [
            ("version = 2\n[plugins\nx = 1\n", "line 2, column 9"),
            ("version = 2\nversion = 3\n", "line 2"),
            ("version = 4\n", "config version 4 is not supported"),
            ("version = \"2\"\n", "config version \"2\" is not supported"),
            ("version = 2\nplugins = 1\n", "plugins is not a table"),
        ] {
            let err = run(Some(input), &edit()).unwrap_err();
            assert!(err.starts_with("/etc/containerd/config.toml: "), "{err}");
            assert!(err.contains(needle), "{input:?}: {err}");
        }
    }

    fn apply(path: &Path, e: &RuntimeEdit) -> Result<FileOutcome, ConfigureError> {
        let opts = Options {
            dry_run: false,
            backup: true,
            private: false,
        };
        file_edit::apply(path, opts, |cur| plan(cur, e, path)).map(|(o, _)| o)
    }

    #[test]
    fn invalid_file_is_left_byte_identical() {
        let d = TempDir::new("ctd-invalid");
        let f = d.path().join("config.toml");
        let bad = "version = 2\n# comment\n[plugins.\"io.containerd.grpc.v1.cri\"\nx = 1\n";
        fs::write(&f, bad).unwrap();
        let err = apply(&f, &edit()).unwrap_err().to_string();
        assert!(err.contains("config.toml: not valid TOML"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert_eq!(fs::read_to_string(&f).unwrap(), bad);
        assert_eq!(d.names(), ["config.toml"]);
    }

    #[test]
    fn concurrent_runs_keep_both_edits() {
        for round in 0..10 {
            let d = TempDir::new("ctd-race");
            let f = d.path().join("config.toml");
            fs::write(&f, V3).unwrap();
            let edits = [
                with(|e| e.cdi = CdiSetting::On),
                with(|e| e.default = DefaultRuntime::Set),
            ];
            std::thread::scope(|s| {
                for e in &edits {
                    let f = &f;
                    s.spawn(move || {
                        let opts = Options {
                            dry_run: false,
                            backup: true,
                            private: false,
                        };
                        file_edit::apply(f, opts, |cur| {
                            std::thread::sleep(std::time::Duration::from_millis(2));
                            plan(cur, e, f)
                        })
                        .unwrap()
                    });
                }
            });
            let d2 = doc(&fs::read_to_string(&f).unwrap());
            let cri = ["plugins", "io.containerd.cri.v1.runtime"];
            assert_eq!(
                at(&d2, &[&cri[..], &["enable_cdi"]].concat())
                    .unwrap()
                    .as_bool(),
                Some(true),
                "round {round}"
            );
            assert_eq!(
                at(
                    &d2,
                    &[&cri[..], &["containerd", "default_runtime_name"]].concat()
                )
                .unwrap()
                .as_str(),
                Some("amd"),
                "round {round}"
            );
            assert_eq!(
                fs::read_to_string(d.path().join("config.toml.bak")).unwrap(),
                V3
            );
        }
    }
}
