//! containerd: `/etc/containerd/config.toml`, config versions 2 and 3 (and 1).
//!
//! Adds a runtime `amd`: the runc v2 shim with `options.BinaryName` =
//! amd-container-runtime, its other settings copied from the existing runc
//! runtime (`SystemdCgroup` above all); optionally `default_runtime_name =
//! "amd"` and `enable_cdi = true`. The file is edited with toml_edit, so the
//! user's comments, key order and formatting survive.

use super::file_edit::Change;
use super::{Changes, DefaultRuntime, RUNTIME_NAME};
use crate::CliError;
use toml_edit::{DocumentMut, Item, RawString, Table, TableLike, Value};

pub const DEFAULT_CONFIG: &str = "/etc/containerd/config.toml";
const RUNC_V2: &str = "io.containerd.runc.v2";
/// The version written into a new (missing or empty) file: containerd 1.x
/// reads it and 2.x migrates it on load, like nvidia-ctk's default.
const NEW_FILE_VERSION: i64 = 2;

pub use super::RuntimeEdit as Edit;

/// The CRI runtime plugin of each config version.
fn cri_plugin(version: i64) -> &'static str {
    match version {
        1 => "cri",
        2 => "io.containerd.grpc.v1.cri",
        _ => "io.containerd.cri.v1.runtime",
    }
}

fn err(path: &std::path::Path, msg: impl std::fmt::Display) -> CliError {
    CliError::Message(format!("{}: {msg}", path.display()))
}

/// Leading whitespace of the last line of a decor prefix (the indentation of
/// a header or key), if that line is whitespace only.
fn indent(raw: Option<&RawString>) -> Option<String> {
    let s = raw?.as_str()?;
    let last = s.rsplit('\n').next().unwrap_or(s);
    last.chars()
        .all(|c| c == ' ' || c == '\t')
        .then(|| last.to_string())
}

/// A copy of a runtime table without its comments and positions, keeping
/// only its indentation; `extra` is added to every header's indentation.
fn fresh_copy(src: &dyn TableLike, src_table: Option<&Table>) -> Table {
    let mut t = Table::new();
    if let Some(ind) = src_table.and_then(|s| indent(s.decor().prefix())) {
        t.decor_mut().set_prefix(format!("\n{ind}"));
    }
    for (k, item) in src.iter() {
        let mut key = toml_edit::Key::new(k);
        if let Some(ind) = src.key(k).and_then(|key| indent(key.leaf_decor().prefix())) {
            key.leaf_decor_mut().set_prefix(ind);
        }
        let copy = match item {
            Item::Value(v) => {
                let mut v = v.clone();
                v.decor_mut().clear();
                Item::Value(v)
            }
            Item::Table(sub) => Item::Table(fresh_copy(sub, Some(sub))),
            other => other.clone(),
        };
        t.insert_formatted(&key, copy);
    }
    t
}

/// The child table `key` of `parent`, created (implicit: no header of its
/// own until it holds values) if missing.
fn child_or_create<'a>(
    parent: &'a mut dyn TableLike,
    key: &str,
    at: &str,
    path: &std::path::Path,
) -> Result<&'a mut dyn TableLike, CliError> {
    if !parent.contains_key(key) {
        let mut t = Table::new();
        t.set_implicit(true);
        t.set_dotted(parent.is_dotted());
        parent.insert(key, Item::Table(t));
    }
    parent
        .get_mut(key)
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| err(path, format!("{at} is not a table")))
}

fn child<'a>(
    parent: &'a mut dyn TableLike,
    key: &str,
    at: &str,
    path: &std::path::Path,
) -> Result<Option<&'a mut dyn TableLike>, CliError> {
    match parent.get_mut(key) {
        None => Ok(None),
        Some(item) => item
            .as_table_like_mut()
            .map(Some)
            .ok_or_else(|| err(path, format!("{at} is not a table"))),
    }
}

/// Sets `key` to a string or boolean, keeping the key and the value's
/// surrounding formatting if it exists. Returns the old value if it changed.
fn set(t: &mut dyn TableLike, key: &str, new: Value) -> Option<Option<String>> {
    match t.get_mut(key) {
        Some(Item::Value(old)) => {
            if old.as_str() == new.as_str() && old.as_bool() == new.as_bool() {
                return None;
            }
            let shown = old.clone().decorated("", "").to_string();
            let decor = old.decor().clone();
            *old = new;
            *old.decor_mut() = decor;
            Some(Some(shown))
        }
        Some(other) => {
            let shown = other.to_string().trim().to_string();
            *other = Item::Value(new);
            Some(Some(shown))
        }
        None => {
            // Indented like the table's last key.
            let last = t
                .iter()
                .filter(|(_, i)| i.is_value())
                .last()
                .map(|(k, _)| k.to_string());
            let ind = last.and_then(|k| t.key(&k).and_then(|k| indent(k.leaf_decor().prefix())));
            let mut k = toml_edit::Key::new(key);
            if let Some(ind) = ind {
                k.leaf_decor_mut().set_prefix(ind);
            }
            t.entry_format(&k).or_insert(Item::Value(new));
            Some(None)
        }
    }
}

fn was(old: Option<String>) -> String {
    old.map(|o| format!(" (was {o})")).unwrap_or_default()
}

/// The comment we put above a key of the user's tables that we add or
/// overwrite, so that `--remove` can tell ours from theirs and put back what
/// was there: `# amd-ctk: added` or `# amd-ctk: was "runc"`.
const MARK: &str = "# amd-ctk: ";

fn key_prefix(t: &dyn TableLike, key: &str) -> String {
    t.key(key)
        .and_then(|k| k.leaf_decor().prefix())
        .and_then(|r| r.as_str())
        .unwrap_or("")
        .to_string()
}

/// The prefix without our marker line, and the marker's text.
fn split_mark(prefix: &str) -> (String, Option<String>) {
    let mut rest = String::new();
    let mut mark = None;
    for line in prefix.split_inclusive('\n') {
        match line.trim_start().strip_prefix(MARK) {
            Some(m) if line.ends_with('\n') => mark = Some(m.trim_end().to_string()),
            _ => rest.push_str(line),
        }
    }
    (rest, mark)
}

fn set_key_prefix(t: &mut dyn TableLike, key: &str, prefix: String) {
    if let Some(mut k) = t.key_mut(key) {
        k.leaf_decor_mut().set_prefix(prefix);
    }
}

/// Puts `# amd-ctk: {note}` on its own line right above `key`.
fn mark(t: &mut dyn TableLike, key: &str, note: &str) {
    let (rest, _) = split_mark(&key_prefix(t, key));
    let cut = rest.rfind('\n').map_or(0, |i| i + 1);
    let (before, ind) = rest.split_at(cut);
    let ind: String = ind.chars().filter(|c| *c == ' ' || *c == '\t').collect();
    set_key_prefix(t, key, format!("{before}{ind}{MARK}{note}\n{ind}"));
}

/// Sets a key of the user's table to `new`, marking it (see [`MARK`]).
/// Returns the description of the change, if any.
fn set_marked(t: &mut dyn TableLike, key: &str, new: Value, at: &str) -> Option<String> {
    let old = set(t, key, new.clone())?;
    let shown = new.to_string();
    let shown = shown.trim();
    match old {
        None => {
            mark(t, key, "added");
            Some(format!("set {at}.{key} = {shown}"))
        }
        Some(old) => {
            mark(t, key, &format!("was {old}"));
            Some(format!("set {at}.{key} = {shown} (was {old})"))
        }
    }
}

/// Undoes [`set_marked`] if `key` still holds `ours`: the value it had is
/// put back, or the key we added is removed. An unmarked key is removed
/// only if `remove_unmarked` (a value that names us, like `"amd"`).
fn unset_marked(
    t: &mut dyn TableLike,
    key: &str,
    ours: &Value,
    remove_unmarked: bool,
    at: &str,
) -> Option<String> {
    let current = t.get(key)?.as_value()?;
    if current.to_string().trim() != ours.to_string().trim() {
        return None;
    }
    let (rest, note) = split_mark(&key_prefix(t, key));
    let old = note
        .as_deref()
        .and_then(|n| n.strip_prefix("was "))
        .and_then(|v| v.parse::<Value>().ok());
    match (old, note) {
        (Some(old), _) => {
            let shown = old.to_string();
            set(t, key, old);
            set_key_prefix(t, key, rest);
            Some(format!("restored {at}.{key} = {}", shown.trim()))
        }
        (None, Some(_)) => {
            t.remove(key);
            Some(format!("removed {at}.{key}"))
        }
        (None, None) if remove_unmarked => {
            t.remove(key);
            Some(format!("removed {at}.{key}"))
        }
        (None, None) => None,
    }
}

/// Plans the edit of config.toml (`None`: the file does not exist).
pub fn plan(
    current: Option<&[u8]>,
    edit: &Edit,
    path: &std::path::Path,
) -> Result<(Change, Changes), CliError> {
    let text = match current {
        None => "",
        Some(b) => std::str::from_utf8(b)
            .map_err(|e| err(path, format!("not UTF-8 (byte {})", e.valid_up_to())))?,
    };
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| err(path, format!("not valid TOML: {e}")))?;
    let mut changes = Changes::default();
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
                return Err(err(
                    path,
                    format!(
                        "config version {} is not supported (1, 2 and 3 are)",
                        item.to_string().trim()
                    ),
                ))
            }
        },
    };
    let plugin = cri_plugin(version);
    let plugin_at = format!("plugins.{plugin:?}");
    let containerd_at = format!("{plugin_at}.containerd");
    let runtimes_at = format!("{containerd_at}.runtimes");
    let amd_at = format!("{runtimes_at}.{RUNTIME_NAME}");
    let root: &mut dyn TableLike = doc.as_table_mut();
    if edit.remove {
        remove(root, edit, path, plugin, &mut changes)?;
    } else {
        let plugins = child_or_create(root, "plugins", "plugins", path)?;
        let cri = child_or_create(plugins, plugin, &plugin_at, path)?;
        if edit.cdi {
            changes
                .lines
                .extend(set_marked(cri, "enable_cdi", Value::from(true), &plugin_at));
        }
        let containerd = child_or_create(cri, "containerd", &containerd_at, path)?;
        let default_name = containerd
            .get("default_runtime_name")
            .and_then(Item::as_str)
            .map(str::to_string);
        match edit.default {
            DefaultRuntime::Keep => {}
            DefaultRuntime::Set => changes.lines.extend(set_marked(
                containerd,
                "default_runtime_name",
                Value::from(RUNTIME_NAME),
                &containerd_at,
            )),
            DefaultRuntime::Unset => unset_default(containerd, &containerd_at, &mut changes),
        }
        let runtimes = child_or_create(containerd, "runtimes", &runtimes_at, path)?;
        configure_runtime(
            runtimes,
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

fn is_runc_v2(item: &Item) -> bool {
    item.get("runtime_type").and_then(Item::as_str) == Some(RUNC_V2)
}

fn configure_runtime(
    runtimes: &mut dyn TableLike,
    edit: &Edit,
    default_name: Option<&str>,
    amd_at: &str,
    path: &std::path::Path,
    changes: &mut Changes,
) -> Result<(), CliError> {
    let added = !runtimes.contains_key(RUNTIME_NAME);
    if added {
        // Settings from the runtime containerd uses now, if it is runc-like.
        let candidates = default_name
            .filter(|n| *n != RUNTIME_NAME)
            .into_iter()
            .chain(["runc", "crun"]);
        let mut from = None;
        for name in candidates {
            if let Some(item) = runtimes.get(name).filter(|i| is_runc_v2(i)) {
                from = Some((name.to_string(), item.clone()));
                break;
            }
        }
        let table = match &from {
            Some((_, item)) => {
                let src = item.as_table_like().expect("is_runc_v2 saw a table");
                fresh_copy(src, item.as_table())
            }
            None => Table::new(),
        };
        runtimes.insert(RUNTIME_NAME, Item::Table(table));
        let source = match &from {
            Some((name, item)) => {
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
                format!(", other settings copied from runtime {name:?}")
            }
            None => String::new(),
        };
        changes.lines.push(format!(
            "added [{amd_at}] (runtime_type = {RUNC_V2:?}, options.BinaryName = {:?}{source})",
            edit.runtime_path
        ));
    }
    let amd = child(runtimes, RUNTIME_NAME, amd_at, path)?.expect("present");
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

fn unset_default(containerd: &mut dyn TableLike, containerd_at: &str, changes: &mut Changes) {
    changes.lines.extend(unset_marked(
        containerd,
        "default_runtime_name",
        &Value::from(RUNTIME_NAME),
        true,
        containerd_at,
    ));
}

/// Drops `key` from `parent` if it is a table that our removal emptied and
/// that carries no comment: such a header means nothing to containerd.
/// Tables that were empty before, or commented, are the user's and stay.
fn drop_if_emptied(parent: &mut dyn TableLike, key: &str, len_before: usize) {
    let drop = match parent.get(key) {
        Some(Item::Table(t)) => {
            len_before > 0
                && t.is_empty()
                && !t
                    .decor()
                    .prefix()
                    .and_then(|r| r.as_str())
                    .is_some_and(|p| p.contains('#'))
        }
        Some(Item::Value(Value::InlineTable(t))) => len_before > 0 && t.is_empty(),
        _ => false,
    };
    if drop {
        parent.remove(key);
    }
}

fn len_of(parent: &dyn TableLike, key: &str) -> usize {
    parent
        .get(key)
        .and_then(Item::as_table_like)
        .map_or(0, |t| t.len())
}

fn remove(
    root: &mut dyn TableLike,
    edit: &Edit,
    path: &std::path::Path,
    plugin: &str,
    changes: &mut Changes,
) -> Result<(), CliError> {
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
    if edit.cdi {
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
        unset_default(containerd, &containerd_at, changes);
        let runtimes_len = len_of(containerd, "runtimes");
        if let Some(runtimes) = child(containerd, "runtimes", &runtimes_at, path)? {
            if runtimes.remove(RUNTIME_NAME).is_some() {
                changes
                    .lines
                    .push(format!("removed [{runtimes_at}.{RUNTIME_NAME}]"));
            }
        }
        drop_if_emptied(containerd, "runtimes", runtimes_len);
    }
    drop_if_emptied(cri, "containerd", containerd_len);
    drop_if_emptied(plugins, plugin, cri_len);
    drop_if_emptied(root, "plugins", plugins_len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::file_edit::{self, testutil::TempDir, Options, Outcome};
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

    use super::super::test_edit::{edit, with};

    /// The new text, or `None` for "no change".
    fn run(input: Option<&str>, e: &Edit) -> Result<Option<String>, String> {
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
                e.cdi = true
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
                    e.cdi = true
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
        let configured = run(Some(&text), &with(|e| e.cdi = true)).unwrap().unwrap();
        let removed = run(
            Some(&configured),
            &with(|e| {
                e.remove = true;
                e.cdi = true
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

    fn apply(path: &Path, e: &Edit) -> Result<Outcome, CliError> {
        let opts = Options {
            dry_run: false,
            backup: true,
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
                with(|e| e.cdi = true),
                with(|e| e.default = DefaultRuntime::Set),
            ];
            std::thread::scope(|s| {
                for e in &edits {
                    let f = &f;
                    s.spawn(move || {
                        let opts = Options {
                            dry_run: false,
                            backup: true,
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
