//! Podman's `precreate` stage: the spec editor. The whole config comes in on
//! stdin and goes out on stdout with the nodes in `linux.devices` and allow
//! rules in `linux.resources.devices`, and, for a non-root process user, the
//! nodes' host groups in `process.user.additionalGids` ([`grant_groups`]);
//! no live injection is needed then.

use crate::json_slot::{array, object, object_in};
use amd_container_common::access::{self, NodeKind, ProcessUser};
use amd_container_common::{ContainerEdits, DeviceNode};
use serde_json::{json, Value};

/// Environment entries of a config document.
pub fn env(doc: &Value) -> Vec<&str> {
    doc.pointer("/process/env")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Adds the edits to the config (idempotent: present paths and rules stay once).
pub fn apply(doc: &mut Value, edits: &ContainerEdits) {
    let linux = object(object_in(doc), "linux");
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
    let rules = array(object(linux, "resources"), "devices");
    for n in &edits.device_nodes {
        let rule = json!({"allow": true, "type": "c", "major": n.major, "minor": n.minor, "access": "rwm"});
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
}

/// Gives the config's process user the host groups it needs for the nodes
/// of `edits` (of the admin's `kinds`) in `process.user.additionalGids`,
/// as `--group-add` would. Returns the gids added and the nodes the user
/// cannot use and that no group may be given for (gid 0), for a warning.
pub fn grant_groups<'a>(
    doc: &mut Value,
    edits: &'a ContainerEdits,
    kinds: &[NodeKind],
) -> (Vec<u32>, Vec<&'a DeviceNode>) {
    let user = ProcessUser::of_spec(doc);
    let grants = access::groups_to_add(&edits.device_nodes, &user, kinds);
    access::add_gids_to_spec(doc, &grants.gids);
    (grants.gids, grants.refused)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn strict_edits() -> ContainerEdits {
        let n = |path: &str, gid| DeviceNode {
            path: path.into(),
            major: 226,
            minor: 128,
            mode: 0o660,
            uid: 0,
            gid,
        };
        ContainerEdits {
            device_nodes: vec![
                n("/dev/kfd", 109),
                n("/dev/dri/card1", 44),
                n("/dev/dri/renderD128", 109),
                n("/dev/dri/renderD129", 0),
            ],
        }
    }

    #[test]
    fn non_root_user_gets_the_nodes_groups_once() {
        let kinds = NodeKind::default_user_access();
        let edits = strict_edits();
        let mut doc = json!({"process": {"user": {"uid": 1000, "gid": 1000}, "env": []}});
        let (gids, refused) = grant_groups(&mut doc, &edits, &kinds);
        assert_eq!(gids, [109]);
        let refused: Vec<_> = refused
            .iter()
            .map(|n| n.path.display().to_string())
            .collect();
        assert_eq!(refused, ["/dev/dri/renderD129"]);
        assert_eq!(doc["process"]["user"]["additionalGids"], json!([109]));
        // Idempotent: the user now has the group, nothing more is added.
        let (gids, _) = grant_groups(&mut doc, &edits, &kinds);
        assert!(gids.is_empty());
        assert_eq!(doc["process"]["user"]["additionalGids"], json!([109]));
        // Card nodes when configured.
        let (gids, _) = grant_groups(&mut doc, &edits, &[NodeKind::Card]);
        assert_eq!(gids, [44]);
        assert_eq!(doc["process"]["user"]["additionalGids"], json!([109, 44]));
    }

    #[test]
    fn root_user_and_setting_off_leave_the_user_alone() {
        let edits = strict_edits();
        for (mut doc, kinds) in [
            (
                json!({"process": {"user": {"uid": 0, "gid": 0}}}),
                NodeKind::default_user_access(),
            ),
            (json!({"process": {}}), NodeKind::default_user_access()),
            (
                json!({"process": {"user": {"uid": 1000, "gid": 1000}}}),
                vec![],
            ),
        ] {
            let before = doc.clone();
            let (gids, refused) = grant_groups(&mut doc, &edits, &kinds);
            assert!(gids.is_empty() && refused.is_empty(), "{before}");
            assert_eq!(doc, before);
        }
    }
}
