//! Podman's `precreate` stage: the spec editor. The whole config comes in on
//! stdin and goes out on stdout with the nodes in `linux.devices` and allow
//! rules in `linux.resources.devices`; no live injection is needed then.

use amd_container_common::ContainerEdits;
use serde_json::{json, Map, Value};

/// Environment entries of a config document.
pub fn env(doc: &Value) -> Vec<&str> {
    doc.pointer("/process/env")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn object<'a>(parent: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let map = parent.as_object_mut().expect("parent is an object");
    let slot = map.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().unwrap()
}

fn array<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = map.entry(key).or_insert_with(|| json!([]));
    if !slot.is_array() {
        *slot = json!([]);
    }
    slot.as_array_mut().unwrap()
}

/// Adds the edits to the config (idempotent: present paths and rules stay once).
pub fn apply(doc: &mut Value, edits: &ContainerEdits) {
    if !doc.is_object() {
        *doc = json!({});
    }
    let linux = object(doc, "linux");
    let devices = array(linux, "devices");
    for n in &edits.device_nodes {
        let path = n.path.display().to_string();
        if devices
            .iter()
            .any(|d| d.get("path").and_then(Value::as_str) == Some(&path))
        {
            continue;
        }
        devices.push(json!({
            "path": path, "type": "c", "major": n.major, "minor": n.minor,
            "fileMode": n.mode, "uid": n.uid, "gid": n.gid,
        }));
    }
    let linux_value = doc.get_mut("linux").expect("just created");
    let resources = object(linux_value, "resources");
    let rules = array(resources, "devices");
    for n in &edits.device_nodes {
        let rule = json!({"allow": true, "type": "c", "major": n.major, "minor": n.minor, "access": "rwm"});
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amd_container_common::DeviceNode;

    #[test]
    fn adds_nodes_and_rules_once_keeping_the_rest() {
        let mut doc = json!({"ociVersion": "1.0.2", "process": {"env": ["A=1"]},
            "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}, "namespaces": []}});
        let edits = ContainerEdits {
            device_nodes: vec![DeviceNode {
                path: "/dev/kfd".into(),
                major: 238,
                minor: 0,
                mode: 0o666,
                uid: 0,
                gid: 109,
            }],
        };
        apply(&mut doc, &edits);
        apply(&mut doc, &edits);
        assert_eq!(doc["linux"]["devices"].as_array().unwrap().len(), 1);
        assert_eq!(doc["linux"]["devices"][0]["gid"], 109);
        let rules = doc["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[0]["allow"], false,
            "existing deny-all stays first, our allow after it"
        );
        assert_eq!(doc["linux"]["namespaces"], json!([]));
        assert_eq!(env(&doc), vec!["A=1"]);
    }
}
