//! The official CDI JSON schema, embedded, and validation against it.

use serde_json::Value;

const SCHEMA: &str = include_str!("../schema/schema.json");
const DEFS: &str = include_str!("../schema/defs.json");

/// Every way in which `doc` breaks the schema, as `path: message` lines.
pub fn violations(doc: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(SCHEMA).expect("embedded schema is JSON");
    let defs: Value = serde_json::from_str(DEFS).expect("embedded defs are JSON");
    let validator = jsonschema::options()
        .with_resource(
            "json-schema:///defs.json",
            jsonschema::Resource::from_contents(defs).expect("embedded defs are a resource"),
        )
        .build(&schema)
        .expect("embedded schema compiles");
    validator
        .iter_errors(doc)
        .map(|e| {
            let at = e.instance_path.to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_good_rejects_bad() {
        let good = serde_json::json!({"cdiVersion": "0.5.0", "kind": "amd.com/gpu",
            "devices": [{"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/kfd"}]}}]});
        assert_eq!(violations(&good), Vec::<String>::new());
        let bad = serde_json::json!({"kind": "amd.com/gpu",
            "devices": [{"name": "0", "containerEdits": {"deviceNodes": [{"major": "x"}]}}]});
        let v = violations(&bad);
        assert!(v.iter().any(|m| m.contains("cdiVersion")), "{v:?}");
        assert!(v.iter().any(|m| m.contains("path")), "{v:?}");
    }
}
