//! Writes on a container's OCI runtime spec held as a JSON document (Podman's
//! precreate, the Docker entry): the nodes in `linux.devices`, their allow
//! rules in `linux.resources.devices`, groups in `process.user.additionalGids`
//! and the hook's own entries in `hooks`.
//!
//! Contract: every edit is idempotent (what is there stays once) and keeps
//! everything else, JSON keys in their order; a slot of the wrong shape is
//! replaced as [`json_slot`] says. Nothing here reads a file or the hardware.

use super::json_slot::{self, array, object, object_in};
use super::view::DocView;
use amd_container_common::access::{self, NodeKind};
use amd_container_common::{ContainerEdits, DeviceNode};
use serde_json::{json, Map, Value};

/// Adds the edits to the config (idempotent: present paths and rules stay once).
pub fn add_devices(doc: &mut Value, edits: &ContainerEdits) {
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
    let user = DocView(doc).user();
    let grants = access::groups_to_add(&edits.device_nodes, &user, kinds);
    add_gids(doc, &grants.gids);
    (grants.gids, grants.refused)
}

/// Adds `gids` to `process.user.additionalGids` of a config document,
/// creating `process.user` when absent; gids already there stay once.
/// Returns whether the document changed.
pub fn add_gids(doc: &mut serde_json::Value, gids: &[u32]) -> bool {
    if gids.is_empty() {
        return false;
    }
    let Some(map) = doc.as_object_mut() else {
        return false;
    };
    let process = map.entry("process").or_insert_with(|| json!({}));
    let Some(process) = process.as_object_mut() else {
        return false;
    };
    let user = process
        .entry("user")
        .or_insert_with(|| json!({"uid": 0, "gid": 0}));
    let Some(user) = user.as_object_mut() else {
        return false;
    };
    let list = user.entry("additionalGids").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let Some(list) = list.as_array_mut() else {
        return false;
    };
    let mut changed = false;
    for &gid in gids {
        if !list.iter().any(|v| v.as_u64() == Some(gid.into())) {
            list.push(Value::from(gid));
            changed = true;
        }
    }
    changed
}

/// The `hooks.createRuntime` entry, with the environment `env` (the
/// runtime's `hook_env`). A timeout ≤ 0 means none.
pub fn hook_entry(hook_path: &str, timeout: i64, env: &[String]) -> Value {
    stage_entry("createRuntime", hook_path, timeout, env)
}

/// The entry of the hook for `stage` (`createRuntime`, or `poststop` for
/// the GPU tracker's release).
pub fn stage_entry(stage: &str, hook_path: &str, timeout: i64, env: &[String]) -> Value {
    let mut hook = json!({
        "path": hook_path,
        "args": ["amd-container-hook", stage],
        "env": env,
    });
    if timeout > 0 {
        hook["timeout"] = json!(timeout);
    }
    hook
}

/// Appends `hook` to `hooks.createRuntime` unless an identical entry is
/// there. Returns whether the document changed. Everything else is kept.
pub fn register(doc: &mut Map<String, Value>, hook: Value) -> bool {
    register_at(doc, "createRuntime", hook)
}

/// Appends `hook` to `hooks.<stage>` unless an identical entry is there.
pub fn register_at(doc: &mut Map<String, Value>, stage_name: &str, hook: Value) -> bool {
    let list = json_slot::array(json_slot::object(doc, "hooks"), stage_name);
    if list.contains(&hook) {
        return false;
    }
    list.push(hook);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use amd_container_common::config::HOOK_PATH_ENV;

    /// The hook's environment: [`HOOK_PATH_ENV`] and then `extra`
    /// (`runtime.hook-env`), whose `PATH=` entry, if any, replaces the
    /// default PATH. An entry that is not `NAME=VALUE` is an error.
    fn hook_env(
        extra: &[String],
    ) -> Result<Vec<String>, amd_container_common::config::HookEnvError> {
        let runtime = amd_container_common::config::RuntimeConfig {
            hook_env: extra.to_vec(),
            ..Default::default()
        };
        runtime.hook_env(std::path::Path::new(
            amd_container_common::config::DEFAULT_PATH,
        ))
    }

    fn path_only() -> Vec<String> {
        hook_env(&[]).unwrap()
    }

    #[test]
    fn hook_env_adds_entries_and_may_replace_path() {
        assert_eq!(path_only(), [HOOK_PATH_ENV]);
        let extra = |v: &[&str]| hook_env(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            extra(&[
                "SYSTEMD_DEVICE_VERIFY_SYSFS=0",
                "AMD_CTK_CONFIG=/x.toml",
                "E="
            ])
            .unwrap(),
            [
                HOOK_PATH_ENV,
                "SYSTEMD_DEVICE_VERIFY_SYSFS=0",
                "AMD_CTK_CONFIG=/x.toml",
                "E="
            ]
        );
        assert_eq!(
            extra(&["A=1", "PATH=/opt/bin:/usr/bin"]).unwrap(),
            ["PATH=/opt/bin:/usr/bin", "A=1"]
        );
        for bad in ["NOVALUE", "=x", ""] {
            let err = extra(&["A=1", bad]).unwrap_err().to_string();
            assert!(
                err.contains("runtime.hook-env") && err.contains(&format!("{bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn register_keeps_the_rest_and_is_idempotent() {
        let mut doc = json!({
            "ociVersion": "1.0.2",
            "hooks": {"prestart": [{"path": "/usr/bin/docker-proxy"}], "createRuntime": [{"path": "/x"}]},
            "zzz": 1
        });
        let map = doc.as_object_mut().unwrap();
        assert!(register(
            map,
            hook_entry("/usr/bin/amd-container-hook", 30, &path_only())
        ));
        assert!(!register(
            map,
            hook_entry("/usr/bin/amd-container-hook", 30, &path_only())
        ));
        assert_eq!(
            doc,
            json!({
                "ociVersion": "1.0.2",
                "hooks": {
                    "prestart": [{"path": "/usr/bin/docker-proxy"}],
                    "createRuntime": [{"path": "/x"}, {
                        "path": "/usr/bin/amd-container-hook",
                        "args": ["amd-container-hook", "createRuntime"],
                        "env": [HOOK_PATH_ENV],
                        "timeout": 30
                    }]
                },
                "zzz": 1
            })
        );
        let keys: Vec<&str> = doc
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys, ["ociVersion", "hooks", "zzz"]);
    }

    #[test]
    fn register_creates_hooks() {
        let mut doc = json!({"ociVersion": "1.0.2", "hooks": null});
        assert!(register(
            doc.as_object_mut().unwrap(),
            hook_entry("/h", 0, &path_only())
        ));
        assert_eq!(
            doc["hooks"],
            json!({"createRuntime": [{"path": "/h", "args": ["amd-container-hook", "createRuntime"], "env": [HOOK_PATH_ENV]}]})
        );
    }

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
        add_devices(&mut doc, &edits);
        add_devices(&mut doc, &edits);
        assert_eq!(doc["linux"]["devices"].as_array().unwrap().len(), 1);
        assert_eq!(doc["linux"]["devices"][0]["gid"], 109);
        let rules = doc["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[0]["allow"], false,
            "existing deny-all stays first, our allow after it"
        );
        assert_eq!(doc["linux"]["namespaces"], json!([]));
        assert_eq!(doc["process"]["env"], json!(["A=1"]));
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
    #[test]
    fn add_gids_once_keeping_the_rest() {
        let mut doc = json!({"process": {"user": {"uid": 1000, "gid": 1000, "additionalGids": [5]}, "cwd": "/"}});
        assert!(add_gids(&mut doc, &[109, 5]));
        assert!(!add_gids(&mut doc, &[109]));
        assert_eq!(
            doc,
            json!({"process": {"user": {"uid": 1000, "gid": 1000, "additionalGids": [5, 109]}, "cwd": "/"}})
        );
        assert!(!add_gids(&mut doc, &[]));
        let mut bare = json!({});
        assert!(add_gids(&mut bare, &[109]));
        assert_eq!(
            bare,
            json!({"process": {"user": {"uid": 0, "gid": 0, "additionalGids": [109]}}})
        );
    }
}
