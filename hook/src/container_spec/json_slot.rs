//! In-place edits of a JSON document (a spec read as `serde_json::Value`):
//! the object or array at a key, created when absent.
//!
//! Contract: a slot of the wrong shape (a string where an object belongs,
//! say) is replaced by an empty one of the right shape, as the editors
//! always did; nothing else in the document changes. No function here can
//! panic.

use serde_json::{Map, Value};

/// `slot` as an object, replacing it with `{}` when it is not one.
pub fn object_in(slot: &mut Value) -> &mut Map<String, Value> {
    match slot {
        Value::Object(map) => map,
        other => {
            *other = Value::Object(Map::new());
            object_in(other)
        }
    }
}

/// `slot` as an array, replacing it with `[]` when it is not one.
pub fn array_in(slot: &mut Value) -> &mut Vec<Value> {
    match slot {
        Value::Array(list) => list,
        other => {
            *other = Value::Array(Vec::new());
            array_in(other)
        }
    }
}

/// The object at `map[key]`, created (or replaced, when not an object) as `{}`.
pub fn object<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    object_in(map.entry(key).or_insert_with(|| Value::Object(Map::new())))
}

/// The array at `map[key]`, created (or replaced, when not an array) as `[]`.
pub fn array<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    array_in(map.entry(key).or_insert_with(|| Value::Array(Vec::new())))
}
