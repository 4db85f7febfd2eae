//! Marked edits of an admin's TOML file (toml_edit keeps its comments, key
//! order and formatting). A key we add or overwrite gets a comment line right
//! above it, `# amd-ctk: added` or `# amd-ctk: was "runc"`, so that a later
//! `--remove` can tell ours from theirs and put back what was there; a key
//! without our mark is the admin's and is left alone.

use toml_edit::{Item, RawString, TableLike, Value};

/// Leading whitespace of the last line of a decor prefix (the indentation of
/// a header or key), if that line is whitespace only.
pub fn indent(raw: Option<&RawString>) -> Option<String> {
    let s = raw?.as_str()?;
    let last = s.rsplit('\n').next().unwrap_or(s);
    last.chars()
        .all(|c| c == ' ' || c == '\t')
        .then(|| last.to_string())
}

/// `v` without comments or layout: one line, as a marker can hold it.
pub fn plain(v: &Value) -> Value {
    let mut v = match v {
        Value::Array(a) => {
            let mut out: toml_edit::Array = a.iter().map(plain).collect();
            out.fmt();
            Value::Array(out)
        }
        Value::InlineTable(t) => {
            let mut out: toml_edit::InlineTable = t.iter().map(|(k, v)| (k, plain(v))).collect();
            out.fmt();
            Value::InlineTable(out)
        }
        // Rebuilt from the data, so that 'x' and "x" are the same.
        Value::String(x) => Value::from(x.value().as_str()),
        Value::Integer(x) => Value::from(*x.value()),
        Value::Float(x) => Value::from(*x.value()),
        Value::Boolean(x) => Value::from(*x.value()),
        Value::Datetime(x) => Value::from(*x.value()),
    };
    v.decor_mut().clear();
    v
}

/// `v` as one line for a marker: scalars as written ('x' stays 'x'),
/// arrays and inline tables without their comments and layout.
pub fn one_line(v: &Value) -> String {
    match v {
        Value::Array(_) | Value::InlineTable(_) => plain(v).to_string(),
        scalar => scalar.clone().decorated("", "").to_string(),
    }
}

/// Do `a` and `b` hold the same data, whatever their layout?
pub fn same(a: &Value, b: &Value) -> bool {
    plain(a).to_string() == plain(b).to_string()
}

/// Sets `key` to `new`, keeping the key and the value's surrounding
/// formatting if it exists. Returns the old value (one line) if it changed.
pub fn set(t: &mut dyn TableLike, key: &str, new: Value) -> Option<Option<String>> {
    match t.get_mut(key) {
        Some(Item::Value(old)) => {
            if same(old, &new) {
                return None;
            }
            let shown = one_line(old);
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

pub fn was(old: Option<String>) -> String {
    old.map(|o| format!(" (was {o})")).unwrap_or_default()
}

/// The comment we put above a key of the user's tables that we add or
/// overwrite, so that `--remove` can tell ours from theirs and put back what
/// was there: `# amd-ctk: added` or `# amd-ctk: was "runc"`.
pub const MARK: &str = "# amd-ctk: ";

pub fn key_prefix(t: &dyn TableLike, key: &str) -> String {
    t.key(key)
        .and_then(|k| k.leaf_decor().prefix())
        .and_then(|r| r.as_str())
        .unwrap_or("")
        .to_string()
}

/// The prefix without our marker line, and the marker's text.
pub fn split_mark(prefix: &str) -> (String, Option<String>) {
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

pub fn set_key_prefix(t: &mut dyn TableLike, key: &str, prefix: String) {
    if let Some(mut k) = t.key_mut(key) {
        k.leaf_decor_mut().set_prefix(prefix);
    }
}

/// Puts `# amd-ctk: {note}` on its own line right above `key`.
pub fn mark(t: &mut dyn TableLike, key: &str, note: &str) {
    let (rest, _) = split_mark(&key_prefix(t, key));
    let cut = rest.rfind('\n').map_or(0, |i| i + 1);
    let (before, ind) = rest.split_at(cut);
    let ind: String = ind.chars().filter(|c| *c == ' ' || *c == '\t').collect();
    // A marker is one comment line, whatever the note holds.
    let note = note.replace(['\n', '\r'], " ");
    set_key_prefix(t, key, format!("{before}{ind}{MARK}{note}\n{ind}"));
}

/// Sets a key of the user's table to `new`, marking it (see [`MARK`]).
/// Returns the description of the change, if any.
pub fn set_marked(t: &mut dyn TableLike, key: &str, new: Value, at: &str) -> Option<String> {
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
pub fn unset_marked(
    t: &mut dyn TableLike,
    key: &str,
    ours: &Value,
    remove_unmarked: bool,
    at: &str,
) -> Option<String> {
    let current = t.get(key)?.as_value()?;
    if !same(current, ours) {
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
