//! Navigating and copying TOML tables with toml_edit so that a user's file
//! keeps its comments, order and layout: the table helpers the containerd
//! editor needs that are not about marks (see toml_marks for those).
//!
//! Contract: these never drop a user's comment or a table the user wrote;
//! [`drop_if_emptied`] removes only tables our own removal emptied.

use super::error::ConfigureError;
use super::toml_marks::indent;
use std::path::Path;
use toml_edit::{Item, Table, TableLike, Value};

/// A copy of a runtime table without its comments and positions, keeping
/// only its indentation.
pub fn fresh_copy(src: &dyn TableLike, src_table: Option<&Table>) -> Table {
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
pub fn child_or_create<'a>(
    parent: &'a mut dyn TableLike,
    key: &str,
    at: &str,
    path: &Path,
) -> Result<&'a mut dyn TableLike, ConfigureError> {
    if !parent.contains_key(key) {
        let mut t = Table::new();
        t.set_implicit(true);
        t.set_dotted(parent.is_dotted());
        parent.insert(key, Item::Table(t));
    }
    parent
        .get_mut(key)
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| ConfigureError::shape(path, at, "a table"))
}

/// The child table `key` of `parent`, if there is one.
pub fn child<'a>(
    parent: &'a mut dyn TableLike,
    key: &str,
    at: &str,
    path: &Path,
) -> Result<Option<&'a mut dyn TableLike>, ConfigureError> {
    match parent.get_mut(key) {
        None => Ok(None),
        Some(item) => item
            .as_table_like_mut()
            .map(Some)
            .ok_or_else(|| ConfigureError::shape(path, at, "a table")),
    }
}

/// Merges `src` over `dst`: tables key by key, anything else replaced.
pub fn overlay(dst: &mut dyn TableLike, src: &dyn TableLike) {
    for (k, item) in src.iter() {
        if item.is_none() {
            continue;
        }
        let both = dst.get(k).is_some_and(Item::is_table_like) && item.is_table_like();
        match (
            dst.get_mut(k).and_then(Item::as_table_like_mut),
            item.as_table_like(),
        ) {
            (Some(d), Some(s)) if both => overlay(d, s),
            _ => {
                let mut v = item.clone();
                if let Some(val) = v.as_value_mut() {
                    val.decor_mut().clear();
                }
                dst.insert(k, v);
            }
        }
    }
}

/// Drops `key` from `parent` if it is a table that our removal emptied and
/// that carries no comment: such a header means nothing to containerd.
/// Tables that were empty before, or commented, are the user's and stay.
pub fn drop_if_emptied(parent: &mut dyn TableLike, key: &str, len_before: usize) {
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

/// How many entries the table `key` of `parent` has (0: none or not a table).
pub fn len_of(parent: &dyn TableLike, key: &str) -> usize {
    parent
        .get(key)
        .and_then(Item::as_table_like)
        .map_or(0, |t| t.len())
}
