//! Registering the hook in a bundle's `config.json`.

use crate::json_slot;
use amd_container_common::request::{find_request, Request};
use serde_json::{json, Map, Value};

/// The hook's environment: PATH only (the container's environment never
/// reaches the hook); one definition, in common's config.
pub use amd_container_common::config::HOOK_PATH_ENV;

/// Does the spec's `process.env` ask for GPUs? Any request that is not
/// "no GPU" (unset, empty, `void`) counts, an invalid value too: the hook
/// then reports the error and fails the start.
pub fn requests_gpu(doc: &Value, swarm_resource: &str) -> bool {
    let Some(env) = doc.pointer("/process/env").and_then(Value::as_array) else {
        return false;
    };
    let entries = env.iter().filter_map(Value::as_str);
    match find_request(entries, swarm_resource) {
        None => false,
        Some(var) => !matches!(Request::parse(var.name, var.value), Ok(Request::NotGpu)),
    }
}

/// The hook's environment: [`HOOK_PATH_ENV`] and then `extra`
/// (`runtime.hook-env`), whose `PATH=` entry, if any, replaces the default
/// PATH. An entry that is not `NAME=VALUE` is an error.
pub fn hook_env(extra: &[String]) -> Result<Vec<String>, super::ShimError> {
    let runtime = amd_container_common::config::RuntimeConfig {
        hook_env: extra.to_vec(),
        ..Default::default()
    };
    Ok(runtime.hook_env(std::path::Path::new(
        amd_container_common::config::DEFAULT_PATH,
    ))?)
}

/// The `hooks.createRuntime` entry, with the environment `env` (see
/// [`hook_env`]). A timeout ≤ 0 means none.
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

/// Replaces `path` with `contents` atomically (common's writer: temp file,
/// fsync, rename, directory fsync), keeping the file's owner, group, mode
/// and extended attributes.
pub use amd_container_common::atomic_file::write_atomic;

#[cfg(test)]
mod tests {
    use super::*;

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

    fn spec(env: &[&str]) -> Value {
        json!({"ociVersion": "1.0.2", "process": {"env": env}, "root": {"path": "rootfs"}})
    }

    #[test]
    fn gpu_requests() {
        let swarm = "DOCKER_RESOURCE_GPU";
        for (env, want) in [
            (vec![], false),
            (vec!["PATH=/bin"], false),
            (vec!["AMD_VISIBLE_DEVICES="], false),
            (vec!["AMD_VISIBLE_DEVICES=void"], false),
            (vec!["AMD_VISIBLE_DEVICES=VOID"], false),
            (vec!["AMD_VISIBLE_DEVICES=0"], true),
            (vec!["AMD_VISIBLE_DEVICES=all"], true),
            (vec!["AMD_VISIBLE_DEVICES=none"], true),
            (vec!["AMD_VISIBLE_DEVICES=bogus!"], true),
            (
                vec!["AMD_VISIBLE_DEVICES=0", "AMD_VISIBLE_DEVICES=void"],
                false,
            ),
            (vec!["DOCKER_RESOURCE_GPU=0"], true),
            (
                vec!["DOCKER_RESOURCE_GPU=0", "AMD_VISIBLE_DEVICES=void"],
                false,
            ),
        ] {
            assert_eq!(requests_gpu(&spec(&env), swarm), want, "{env:?}");
        }
        assert!(!requests_gpu(&json!({}), swarm));
        assert!(!requests_gpu(&json!({"process": {"env": null}}), swarm));
        assert!(!requests_gpu(&spec(&["DOCKER_RESOURCE_GPU=0"]), ""));
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
}
