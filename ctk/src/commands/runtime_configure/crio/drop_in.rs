//! CRI-O: the hooks directory is `[crio.runtime] hooks_dir`, a list whose
//! default is /usr/share/containers/oci/hooks.d (later entries take
//! precedence; a drop-in in /etc/crio/crio.conf.d replaces the whole list).
//! For a non-default directory we write our own drop-in with the list in
//! force before it plus our directory.
//!
//! Our drop-in is recognised by its content: exactly the text we write (its
//! first line says so) for the list it holds. Any other file at `--config`
//! is the admin's and is never replaced nor deleted:
//! - a file outside a drop-in directory (`/etc/crio/crio.conf`) is edited
//!   with toml_edit, comments kept, after a backup: our directory is appended
//!   to its `hooks_dir` (or `hooks_dir` is added), under a marker comment
//!   that `--remove` reads to take back exactly that;
//! - a file inside a drop-in directory (`*.d`) is refused: CRI-O reads every
//!   file there, so a backup beside it would be read as configuration too.

use super::super::engine::EditReport;
use super::super::error::ConfigureError;
use super::super::file_edit::Change;
use super::super::hooks_dir::DEFAULT_DIR;
use super::super::toml_marks::{key_prefix, mark, set_key_prefix, split_mark};
use std::path::Path;
use toml_edit::{Array, DocumentMut, Item, Table, TableLike, Value};

pub const DEFAULT_DROP_IN: &str = "/etc/crio/crio.conf.d/99-amd-container-toolkit.conf";

/// The first line of our drop-in.
const HEADER: &str =
    "# Written by `amd-ctk runtime configure --runtime crio`: the hooks directory of the\n";

/// Marker notes on `hooks_dir` in an admin's file.
const APPENDED: &str = "appended ";
const ADDED_WITH: &str = "added, with ";

/// `[crio.runtime] hooks_dir` of a CRI-O config file, if it sets one.
fn hooks_dir_of(text: &str) -> Option<Vec<String>> {
    let doc: toml_edit::DocumentMut = text.parse().ok()?;
    let list = doc
        .get("crio")?
        .get("runtime")?
        .get("hooks_dir")?
        .as_array()?;
    Some(
        list.iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
    )
}

/// Is `path` in a drop-in directory (`crio.conf.d` and the like), every
/// file of which CRI-O reads?
pub fn in_drop_in_dir(path: &Path) -> bool {
    path.parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n.to_string_lossy().ends_with(".d"))
}

/// The `hooks_dir` CRI-O would use without our drop-in: the last one set by
/// `crio.conf` (beside the drop-in directory) or a drop-in sorted before
/// ours (CRI-O reads every file there, in lexical order), else CRI-O's
/// default.
pub fn hooks_dirs_before(drop_in: &Path) -> Vec<String> {
    let mut found = None;
    let Some(conf_d) = drop_in.parent() else {
        return vec![DEFAULT_DIR.to_string()];
    };
    let ours = drop_in.file_name().unwrap_or_default();
    if let Some(main) = conf_d.parent().map(|p| p.join("crio.conf")) {
        if let Ok(text) = std::fs::read_to_string(main) {
            found = hooks_dir_of(&text).or(found);
        }
    }
    let mut names: Vec<_> = std::fs::read_dir(conf_d)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n.as_os_str() < ours)
        .collect();
    names.sort();
    for name in names {
        if let Ok(text) = std::fs::read_to_string(conf_d.join(name)) {
            found = hooks_dir_of(&text).or(found);
        }
    }
    found.unwrap_or_else(|| vec![DEFAULT_DIR.to_string()])
}

/// The drop-in's text for exactly this list.
fn drop_in_text(dirs: &[String]) -> String {
    let mut out = String::from(HEADER);
    out.push_str(
        "# AMD container toolkit, after the ones CRI-O used before. `amd-ctk runtime configure\n\
         # --runtime crio --remove` deletes this file.\n\
         [crio.runtime]\nhooks_dir = [\n",
    );
    for d in dirs {
        out.push_str(&format!("  {},\n", toml_edit::Value::from(d.as_str())));
    }
    out.push_str("]\n");
    out
}

/// The drop-in's text: the earlier list with `dir` last (highest precedence).
pub fn drop_in_content(before: &[String], dir: &str) -> String {
    let mut dirs: Vec<String> = before.iter().filter(|d| *d != dir).cloned().collect();
    dirs.push(dir.to_string());
    drop_in_text(&dirs)
}

/// What is at `--config`.
enum Kind {
    Missing,
    /// Our drop-in, exactly as we write it.
    Ours,
    /// Anyone else's file, parsed.
    Theirs(DocumentMut),
}

fn classify(current: Option<&[u8]>, path: &Path) -> Result<Kind, ConfigureError> {
    let Some(bytes) = current else {
        return Ok(Kind::Missing);
    };
    let text = std::str::from_utf8(bytes).map_err(|e| ConfigureError::not_utf8(path, e))?;
    if text.starts_with(HEADER) {
        if let Some(list) = hooks_dir_of(text) {
            if drop_in_text(&list) == text {
                return Ok(Kind::Ours);
            }
        }
    }
    let doc: DocumentMut = text.parse().map_err(|source| ConfigureError::Toml {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Kind::Theirs(doc))
}

/// `[crio.runtime]` of an admin's file, created (without a header of its
/// own for `[crio]`) if missing.
fn runtime_table<'a>(
    doc: &'a mut DocumentMut,
    path: &Path,
) -> Result<&'a mut dyn TableLike, ConfigureError> {
    let mut t: &mut dyn TableLike = doc.as_table_mut();
    for (key, at) in [("crio", "crio"), ("runtime", "crio.runtime")] {
        if !t.contains_key(key) {
            let mut new = Table::new();
            new.set_implicit(key == "crio");
            t.insert(key, Item::Table(new));
        }
        t = t
            .get_mut(key)
            .and_then(Item::as_table_like_mut)
            .ok_or_else(|| ConfigureError::shape(path, at, "a table"))?;
    }
    Ok(t)
}

fn hooks_array<'a>(
    t: &'a mut dyn TableLike,
    path: &Path,
) -> Result<Option<&'a mut Array>, ConfigureError> {
    match t.get_mut("hooks_dir") {
        None => Ok(None),
        Some(item) => item
            .as_array_mut()
            .map(Some)
            .ok_or_else(|| ConfigureError::shape(path, "crio.runtime.hooks_dir", "a list")),
    }
}

/// Appends `dir` to `arr`, laid out like the last element: on a line of
/// its own in a multi-line list, after what followed the last element (a
/// comment, say), which [`remove_at`] puts back.
fn push_like_last(arr: &mut Array, dir: &str) {
    let prev = arr
        .iter()
        .last()
        .and_then(|v| v.decor().prefix())
        .and_then(|r| r.as_str())
        .map(str::to_string);
    let v = Value::from(dir);
    match prev {
        Some(p) if p.contains('\n') && arr.trailing_comma() => {
            let ind = &p[p.rfind('\n').map_or(0, |i| i + 1)..];
            let trailing = arr.trailing().as_str().unwrap_or("").to_string();
            let (head, tail) = match trailing.rfind('\n') {
                Some(i) => trailing.split_at(i + 1),
                None => ("\n", trailing.as_str()),
            };
            arr.push_formatted(v.decorated(format!("{head}{ind}"), ""));
            arr.set_trailing(format!("\n{tail}"));
        }
        Some(p) => arr.push_formatted(v.decorated(if p.is_empty() { " " } else { &p }, "")),
        None => arr.push(dir),
    }
}

/// Removes element `i`; if it was the last of a multi-line list, what
/// followed the element before it is put back (undoing [`push_like_last`]).
fn remove_at(arr: &mut Array, i: usize) {
    let removed = arr.remove(i);
    if i != arr.len() || !arr.trailing_comma() {
        return;
    }
    let p = removed
        .decor()
        .prefix()
        .and_then(|r| r.as_str())
        .unwrap_or("")
        .to_string();
    let Some(cut) = p.rfind('\n') else {
        return;
    };
    let trailing = arr.trailing().as_str().unwrap_or("").to_string();
    let tail = trailing.strip_prefix('\n').unwrap_or(&trailing);
    arr.set_trailing(format!("{}{tail}", &p[..=cut]));
}

/// Install: our drop-in (written, or rewritten if it is ours), or `dir` in
/// the `hooks_dir` of the admin's file (see the module doc).
pub fn plan_install(
    current: Option<&[u8]>,
    path: &Path,
    dir: &str,
) -> Result<(Change, EditReport), ConfigureError> {
    let mut changes = EditReport::default();
    let mut doc = match classify(current, path)? {
        Kind::Missing | Kind::Ours => {
            let want = drop_in_content(&hooks_dirs_before(path), dir);
            let change = if current == Some(want.as_bytes()) {
                Change::Unchanged
            } else {
                Change::Write(want.into_bytes())
            };
            return Ok((change, changes));
        }
        Kind::Theirs(doc) => doc,
    };
    let listed = hooks_dir_of(&doc.to_string()).is_some_and(|l| l.iter().any(|d| d == dir));
    if listed {
        return Ok((Change::Unchanged, changes));
    }
    if in_drop_in_dir(path) {
        return Err(ConfigureError::ForeignDropIn {
            path: path.to_path_buf(),
            drop_in_dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            dir: dir.to_string(),
        });
    }
    let t = runtime_table(&mut doc, path)?;
    match hooks_array(t, path)? {
        Some(arr) => {
            push_like_last(arr, dir);
            mark(t, "hooks_dir", &format!("{APPENDED}{}", Value::from(dir)));
            changes
                .lines
                .push(format!("appended {dir:?} to [crio.runtime] hooks_dir"));
        }
        None => {
            let mut arr = Array::new();
            arr.push(DEFAULT_DIR);
            if dir != DEFAULT_DIR {
                arr.push(dir);
            }
            let shown = arr.to_string();
            t.insert("hooks_dir", Item::Value(Value::Array(arr)));
            mark(t, "hooks_dir", &format!("{ADDED_WITH}{}", Value::from(dir)));
            changes.lines.push(format!(
                "set [crio.runtime] hooks_dir = {} (CRI-O's default, then ours)",
                shown.trim()
            ));
        }
    }
    changes.warnings.extend(overriding_drop_ins(path));
    Ok((Change::Write(doc.to_string().into_bytes()), changes))
}

/// Drop-ins of the `crio.conf.d` beside a `crio.conf` that set `hooks_dir`:
/// CRI-O reads them after crio.conf, so theirs wins.
fn overriding_drop_ins(path: &Path) -> Vec<String> {
    let Some(dir) = path.parent().map(|p| p.join("crio.conf.d")) else {
        return Vec::new();
    };
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    names.sort();
    names
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|t| hooks_dir_of(&t))
                .is_some()
        })
        .map(|p| {
            format!(
                "{} sets hooks_dir too and CRI-O reads it after {}: its list is the one in force",
                p.display(),
                path.display()
            )
        })
        .collect()
}

/// Drops `[crio.runtime]` and `[crio]` if our removal left them empty and
/// they carry no comment (a bare header means nothing to CRI-O).
fn drop_if_empty(doc: &mut DocumentMut) {
    let bare = |t: &Table| {
        t.is_empty()
            && !t
                .decor()
                .prefix()
                .and_then(|r| r.as_str())
                .is_some_and(|p| p.contains('#'))
    };
    let Some(crio) = doc.get_mut("crio").and_then(Item::as_table_mut) else {
        return;
    };
    if crio
        .get("runtime")
        .and_then(Item::as_table)
        .is_some_and(bare)
    {
        crio.remove("runtime");
    }
    if bare(crio) {
        doc.remove("crio");
    }
}

/// Remove: our drop-in is deleted; from an admin's file only what our
/// marker names is taken back, and the file stays.
pub fn plan_remove(
    current: Option<&[u8]>,
    path: &Path,
) -> Result<(Change, EditReport), ConfigureError> {
    let mut changes = EditReport::default();
    let mut doc = match classify(current, path)? {
        Kind::Missing => return Ok((Change::Unchanged, changes)),
        Kind::Ours => return Ok((Change::Delete, changes)),
        Kind::Theirs(doc) => doc,
    };
    let t = runtime_table(&mut doc, path)?;
    let (rest, note) = split_mark(&key_prefix(t, "hooks_dir"));
    let ours = note.as_deref().and_then(|n| {
        let (added, v) = match n.strip_prefix(APPENDED) {
            Some(v) => (false, v),
            None => (true, n.strip_prefix(ADDED_WITH)?),
        };
        let v: Value = v.parse().ok()?;
        Some((added, v.as_str()?.to_string()))
    });
    let Some((added, dir)) = ours else {
        if current.is_some() {
            changes
                .kept
                .push("as it is: not written by amd-ctk (no amd-ctk mark in it)".to_string());
        }
        return Ok((Change::Unchanged, changes));
    };
    let Some(arr) = hooks_array(t, path)? else {
        return Ok((Change::Unchanged, changes));
    };
    let at = arr.iter().position(|v| v.as_str() == Some(dir.as_str()));
    if let Some(i) = at {
        remove_at(arr, i);
        changes
            .lines
            .push(format!("removed {dir:?} from [crio.runtime] hooks_dir"));
    }
    let only_default = arr.len() == 1 && arr.get(0).and_then(Value::as_str) == Some(DEFAULT_DIR);
    if added && (arr.is_empty() || only_default) {
        t.remove("hooks_dir");
        changes
            .lines
            .push("removed [crio.runtime] hooks_dir (amd-ctk had added it)".to_string());
        drop_if_empty(&mut doc);
    } else {
        set_key_prefix(t, "hooks_dir", rest);
        if at.is_none() {
            changes
                .lines
                .push("removed the amd-ctk mark from [crio.runtime] hooks_dir".to_string());
        }
    }
    Ok((Change::Write(doc.to_string().into_bytes()), changes))
}

#[cfg(test)]
mod tests {
    use super::super::super::file_edit::testutil::TempDir;
    use super::*;
    use std::fs;

    #[test]
    fn drop_in_lists_default_then_ours() {
        let d = TempDir::new("crio-default");
        let drop_in = d.path().join("crio.conf.d/99-amd-container-toolkit.conf");
        let before = hooks_dirs_before(&drop_in);
        assert_eq!(before, [DEFAULT_DIR]);
        let text = drop_in_content(&before, "/opt/hooks.d");
        assert_eq!(
            text.lines()
                .skip_while(|l| l.starts_with('#'))
                .collect::<Vec<_>>(),
            [
                "[crio.runtime]",
                "hooks_dir = [",
                "  \"/usr/share/containers/oci/hooks.d\",",
                "  \"/opt/hooks.d\",",
                "]"
            ]
        );
        assert_eq!(hooks_dir_of(&text).unwrap(), [DEFAULT_DIR, "/opt/hooks.d"]);
    }

    #[test]
    fn drop_in_keeps_the_list_in_force() {
        let d = TempDir::new("crio-list");
        fs::create_dir_all(d.path().join("crio.conf.d")).unwrap();
        fs::write(
            d.path().join("crio.conf"),
            "[crio]\n[crio.runtime]\n# site hooks\nhooks_dir = [\"/etc/containers/oci/hooks.d\"]\n",
        )
        .unwrap();
        let drop_in = d.path().join("crio.conf.d/99-amd-container-toolkit.conf");
        assert_eq!(hooks_dirs_before(&drop_in), ["/etc/containers/oci/hooks.d"]);
        // A drop-in sorted before ours overrides crio.conf; one after it does not count.
        fs::write(
            d.path().join("crio.conf.d/10-site.conf"),
            "[crio.runtime]\nhooks_dir = [\"/a\", \"/b\"]\n",
        )
        .unwrap();
        fs::write(
            d.path().join("crio.conf.d/99-zzz.conf"),
            "[crio.runtime]\nhooks_dir = [\"/z\"]\n",
        )
        .unwrap();
        fs::write(
            d.path().join("crio.conf.d/20-other.conf"),
            "[crio.api]\nlisten = \"x\"\n",
        )
        .unwrap();
        let before = hooks_dirs_before(&drop_in);
        assert_eq!(before, ["/a", "/b"]);
        // Our directory once, last.
        let text = drop_in_content(&["/a".into(), "/opt/h".into(), "/b".into()], "/opt/h");
        assert_eq!(hooks_dir_of(&text).unwrap(), ["/a", "/b", "/opt/h"]);
        // Quotes and backslashes stay valid TOML.
        let text = drop_in_content(&before, "/opt/we\"ird\\dir");
        assert_eq!(
            hooks_dir_of(&text).unwrap(),
            ["/a", "/b", "/opt/we\"ird\\dir"]
        );
    }

    fn write_of(r: Result<(Change, EditReport), ConfigureError>) -> (String, EditReport) {
        match r.unwrap() {
            (Change::Write(b), c) => (String::from_utf8(b).unwrap(), c),
            other => panic!("{other:?}"),
        }
    }

    const ADMIN: &str = "# CRI-O, by the site admin\n[crio]\nlog_level = \"info\"\n\n[crio.runtime]\n# site hooks first\nhooks_dir = [\n    \"/etc/containers/oci/hooks.d\", # ours\n]\ncgroup_manager = \"systemd\"\n";

    #[test]
    fn admins_file_is_edited_with_a_mark_and_restored_on_remove() {
        let d = TempDir::new("crio-admin");
        let conf = d.path().join("crio.conf");
        let (out, c) = write_of(plan_install(Some(ADMIN.as_bytes()), &conf, "/opt/hooks.d"));
        assert_eq!(
            c.lines,
            ["appended \"/opt/hooks.d\" to [crio.runtime] hooks_dir"]
        );
        // Comments and other keys kept; our directory last, marked.
        for line in ADMIN.lines() {
            assert!(out.contains(line), "{line:?} lost:\n{out}");
        }
        assert!(
            out.contains("# site hooks first\n# amd-ctk: appended \"/opt/hooks.d\"\nhooks_dir"),
            "{out}"
        );
        assert_eq!(
            hooks_dir_of(&out).unwrap(),
            ["/etc/containers/oci/hooks.d", "/opt/hooks.d"]
        );
        // Idempotent.
        assert_eq!(
            plan_install(Some(out.as_bytes()), &conf, "/opt/hooks.d")
                .unwrap()
                .0,
            Change::Unchanged
        );
        // --remove gives the admin's file back byte for byte; never deletes it.
        let (back, c) = write_of(plan_remove(Some(out.as_bytes()), &conf));
        assert_eq!(back, ADMIN);
        assert_eq!(
            c.lines,
            ["removed \"/opt/hooks.d\" from [crio.runtime] hooks_dir"]
        );
        let (change, c) = plan_remove(Some(ADMIN.as_bytes()), &conf).unwrap();
        assert_eq!(change, Change::Unchanged);
        assert_eq!(
            c.kept,
            ["as it is: not written by amd-ctk (no amd-ctk mark in it)"]
        );
    }

    #[test]
    fn list_layouts_survive_a_round_trip() {
        let conf = Path::new("/etc/crio/crio.conf");
        for list in [
            "[\"/a\"]",
            "[ \"/a\" ]",
            "[\"/a\", \"/b\"]",
            "[]",
            "[\n  \"/a\",\n]",
            "[\n  \"/a\", # why\n]",
            "[\n  \"/a\",\n  # more later\n]",
            "[\n  \"/a\"\n]",
            "[\n\t\"/a\",\n\t\"/b\",\n\t]",
        ] {
            let original = format!("[crio.runtime]\nhooks_dir = {list}\n");
            let (out, _) = write_of(plan_install(Some(original.as_bytes()), conf, "/opt/h"));
            let got = hooks_dir_of(&out).unwrap();
            assert_eq!(got.last().map(String::as_str), Some("/opt/h"), "{out}");
            let (back, _) = write_of(plan_remove(Some(out.as_bytes()), conf));
            assert_eq!(back, original, "via:\n{out}");
        }
    }

    #[test]
    fn admins_file_without_hooks_dir_gets_one_and_loses_it_on_remove() {
        let d = TempDir::new("crio-admin-nohooks");
        let conf = d.path().join("crio.conf");
        for original in [
            "# empty but for a comment\n",
            "",
            "[crio.runtime]\ncgroup_manager = \"systemd\"\n",
            "[crio]\n[crio.api]\nlisten = \"/run/crio.sock\"\n",
        ] {
            let (out, c) = write_of(plan_install(Some(original.as_bytes()), &conf, "/opt/h"));
            assert!(c.lines[0].contains("CRI-O's default, then ours"), "{c:?}");
            assert_eq!(
                hooks_dir_of(&out).unwrap(),
                [DEFAULT_DIR, "/opt/h"],
                "{out}"
            );
            assert!(out.contains("# amd-ctk: added, with \"/opt/h\"\n"), "{out}");
            let (back, _) = write_of(plan_remove(Some(out.as_bytes()), &conf));
            let norm = |t: &str| t.parse::<DocumentMut>().unwrap().to_string();
            assert_eq!(hooks_dir_of(&back), None, "{back}");
            assert_eq!(norm(&back).trim(), norm(original).trim(), "{original:?}");
            for l in original.lines().filter(|l| l.starts_with('#')) {
                assert!(back.contains(l), "{back}");
            }
        }
    }

    #[test]
    fn our_drop_in_is_recognised_by_its_exact_content() {
        let d = TempDir::new("crio-ours");
        let drop_in = d.path().join("crio.conf.d/99-amd-container-toolkit.conf");
        let ours = drop_in_content(&[DEFAULT_DIR.into()], "/opt/h");
        assert_eq!(
            plan_remove(Some(ours.as_bytes()), &drop_in).unwrap().0,
            Change::Delete
        );
        // Rewritten (another directory) without a mark: it is ours.
        let (out, _) = write_of(plan_install(Some(ours.as_bytes()), &drop_in, "/opt/other"));
        assert_eq!(out, drop_in_content(&[DEFAULT_DIR.into()], "/opt/other"));
        // Our header on a file the admin has changed: theirs now.
        let edited = format!("{ours}pids_limit = 2048\n");
        let (change, c) = plan_remove(Some(edited.as_bytes()), &drop_in).unwrap();
        assert_eq!(change, Change::Unchanged);
        assert!(c.kept[0].contains("not written by amd-ctk"), "{c:?}");
        // Inside a drop-in directory the admin's file is refused, untouched.
        let err = plan_install(Some(edited.as_bytes()), &drop_in, "/opt/third")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not written by amd-ctk; left as it is"),
            "{err}"
        );
        assert!(err.contains("CRI-O reads every file in"), "{err}");
        // ... unless it already lists the directory: nothing to do.
        assert_eq!(
            plan_install(Some(edited.as_bytes()), &drop_in, "/opt/h")
                .unwrap()
                .0,
            Change::Unchanged
        );
        // A file that is not TOML is reported, never replaced or deleted.
        for plan in [
            plan_install(Some(b"[crio.runtime\n"), &drop_in, "/opt/h"),
            plan_remove(Some(b"[crio.runtime\n"), &drop_in),
        ] {
            let err = plan.unwrap_err().to_string();
            assert!(err.contains("not valid TOML"), "{err}");
        }
    }

    #[test]
    fn a_drop_in_that_overrides_crio_conf_is_warned_about() {
        let d = TempDir::new("crio-override");
        fs::create_dir_all(d.path().join("crio.conf.d")).unwrap();
        fs::write(
            d.path().join("crio.conf.d/10-site.conf"),
            "[crio.runtime]\nhooks_dir = [\"/a\"]\n",
        )
        .unwrap();
        let (_, c) = write_of(plan_install(
            Some(ADMIN.as_bytes()),
            &d.path().join("crio.conf"),
            "/opt/h",
        ));
        assert!(
            c.warnings[0].contains("10-site.conf sets hooks_dir too"),
            "{c:?}"
        );
    }
}
