//! The lean typed read of a container's OCI runtime spec (`config.json`):
//! what the hook decides from it. Two readers of the one document:
//!
//! - [`Spec`], from config.json's bytes (the live stages): `root.path`,
//!   `linux.resources.devices`, `process.capabilities.bounding` and
//!   `process.user`. `oci_spec::runtime::Spec` describes the whole document;
//!   deserializing it built several hundred kilobytes of code into the hook (a
//!   regex engine among them, for `process.execCPUAffinity`), and every
//!   pointer in those tables is a relocation the dynamic loader applies at
//!   *every* container start, GPU or not. This view keeps `oci_spec`'s
//!   accessor names and ignores everything else in the document.
//! - [`DocView`], over a document already held as `serde_json::Value` to be
//!   edited (precreate, the Docker entry): the same questions, read leniently.
//! - [`EnvOnly`], the fast path's read of `process.env` alone, and
//!   [`char_devices`], the CDI stage's read of `linux.devices` alone.
//!
//! Each predicate is written once: [`privileged`] (CAP_SYS_ADMIN in the
//! bounding set), [`may_request`] (the pre-check without the config file),
//! [`requests_gpu`] (does the environment ask for GPUs).
//!
//! Contract: in [`Spec`], a field that is absent or `null` reads as `None`,
//! as in `oci_spec`; a present field of the wrong shape is an error; unknown
//! fields are ignored. In [`DocView`], absent or malformed reads as absent
//! (no env, not privileged, root). Device rules are `oci_spec`'s own type.

use amd_container_common::access::ProcessUser;
use amd_container_common::request::{find_request, Request};
use oci_spec::runtime::LinuxDeviceCgroup;
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;

/// Is CAP_SYS_ADMIN in this bounding set (a privileged container)?
pub fn privileged<'a>(mut bounding: impl Iterator<Item = &'a str>) -> bool {
    bounding.any(|c| c == "CAP_SYS_ADMIN")
}

/// Just enough of config.json to decide whether this is a GPU container.
#[derive(Deserialize, Default)]
pub struct EnvOnly {
    #[serde(default)]
    process: Option<ProcessEnv>,
}

#[derive(Deserialize, Default)]
struct ProcessEnv {
    #[serde(default)]
    env: Option<Vec<String>>,
}

impl EnvOnly {
    pub fn env(&self) -> impl Iterator<Item = &str> {
        self.process
            .iter()
            .flat_map(|p| p.env.iter().flatten())
            .map(String::as_str)
    }
}

/// Cheap pre-check on the raw env, without the config file: could this be a
/// GPU container? `AMD_VISIBLE_DEVICES`, when present, decides (unset-like
/// values such as `void` — what Docker sets for `--gpus 0` — mean no);
/// otherwise any variable with the Swarm prefix might be the configured one.
/// A malformed value counts as a request, so that it is reported.
pub fn may_request(env: &EnvOnly, swarm_prefix: &str) -> bool {
    match find_request(env.env(), "") {
        Some(var) => Request::parse(var.name, var.value).map_or(true, |r| r.is_gpu()),
        None => env.env().any(|e| e.starts_with(swarm_prefix)),
    }
}

/// Does the environment `env` ask for GPUs (with the configured Swarm
/// variable)? Any request that is not "no GPU" (unset, empty, `void`)
/// counts, an invalid value too: the hook then reports the error and fails
/// the start.
pub fn requests_gpu<'a>(env: impl Iterator<Item = &'a str>, swarm_resource: &'a str) -> bool {
    match find_request(env, swarm_resource) {
        None => false,
        Some(var) => !matches!(Request::parse(var.name, var.value), Ok(Request::NotGpu)),
    }
}

/// A config document held as JSON to be edited, read leniently.
#[derive(Clone, Copy)]
pub struct DocView<'a>(pub &'a Value);

impl<'a> DocView<'a> {
    /// `process.env`'s string entries (none when absent or not a list).
    pub fn env(self) -> Vec<&'a str> {
        self.0
            .pointer("/process/env")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// CAP_SYS_ADMIN in `process.capabilities.bounding` ([`privileged`]).
    pub fn privileged(self) -> bool {
        self.0
            .pointer("/process/capabilities/bounding")
            .and_then(Value::as_array)
            .is_some_and(|b| privileged(b.iter().filter_map(Value::as_str)))
    }

    /// `process.user`; absent or malformed reads as root (uid 0), which
    /// needs no grant.
    pub fn user(self) -> ProcessUser {
        self.0
            .pointer("/process/user")
            .and_then(|u| serde_json::from_value(u.clone()).ok())
            .unwrap_or_default()
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Spec {
    #[serde(default)]
    process: Option<Process>,
    #[serde(default)]
    root: Option<Root>,
    #[serde(default)]
    linux: Option<Linux>,
}

#[derive(Debug, Default, Deserialize)]
struct Process {
    #[serde(default)]
    capabilities: Option<Capabilities>,
    #[serde(default)]
    user: Option<ProcessUser>,
}

#[derive(Debug, Default, Deserialize)]
struct Capabilities {
    #[serde(default)]
    bounding: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub struct Root {
    path: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
struct Linux {
    #[serde(default)]
    resources: Option<LinuxResources>,
}

#[derive(Debug, Default, Deserialize)]
struct LinuxResources {
    #[serde(default)]
    devices: Option<Vec<LinuxDeviceCgroup>>,
}

impl Spec {
    pub fn root(&self) -> &Option<Root> {
        &self.root
    }

    /// `linux.resources.devices`: the device cgroup rules the runtime
    /// applies (none when absent).
    pub fn device_rules(&self) -> &[LinuxDeviceCgroup] {
        self.linux
            .as_ref()
            .and_then(|l| l.resources.as_ref())
            .and_then(|r| r.devices.as_deref())
            .unwrap_or_default()
    }

    /// CAP_SYS_ADMIN in the container's bounding set ([`privileged`]).
    pub fn privileged(&self) -> bool {
        self.process
            .as_ref()
            .and_then(|p| p.capabilities.as_ref())
            .and_then(|c| c.bounding.as_ref())
            .is_some_and(|b| privileged(b.iter().map(String::as_str)))
    }

    /// `process.user`; absent reads as root (uid 0, gid 0).
    pub fn user(&self) -> ProcessUser {
        self.process
            .as_ref()
            .and_then(|p| p.user.clone())
            .unwrap_or_default()
    }
}

impl Root {
    pub fn path(&self) -> &PathBuf {
        &self.path
    }
}

/// Just `linux.devices` of config.json: the nodes the engine gave.
#[derive(Deserialize, Default)]
struct DevicesOnly {
    #[serde(default)]
    linux: Option<LinuxDevices>,
}

#[derive(Deserialize, Default)]
struct LinuxDevices {
    #[serde(default)]
    devices: Option<Vec<LinuxDevice>>,
}

#[derive(Deserialize)]
struct LinuxDevice {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    major: i64,
    #[serde(default)]
    minor: i64,
}

/// The char devices of `linux.devices`, as (major, minor).
pub fn char_devices(bytes: &[u8]) -> Vec<(i64, i64)> {
    let doc: DevicesOnly = serde_json::from_slice(bytes).unwrap_or_default();
    doc.linux
        .and_then(|l| l.devices)
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d.kind == "c")
        .map(|d| (d.major, d.minor))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_root_and_device_rules_and_ignores_the_rest() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion": "1.0.2", "process": {"args": ["sh"], "execCPUAffinity": {"x": 1}},
                "root": {"path": "rootfs", "readonly": true},
                "linux": {"resources": {"devices": [
                    {"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 226, "minor": 128, "access": "rw"}]},
                    "namespaces": [{"type": "mount"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            spec.root().as_ref().unwrap().path(),
            &PathBuf::from("rootfs")
        );
        let rules = spec.device_rules();
        assert_eq!(rules.len(), 2);
        assert!(!rules[0].allow());
        assert_eq!((rules[1].major(), rules[1].minor()), (Some(226), Some(128)));
    }

    #[test]
    fn reads_the_process_user() {
        let spec: Spec = serde_json::from_str(
            r#"{"process": {"user": {"uid": 1000, "gid": 1000, "additionalGids": [44],
                "umask": 18}}}"#,
        )
        .unwrap();
        let user = spec.user();
        assert_eq!(
            (user.uid, user.gid, user.additional_gids),
            (1000, 1000, vec![44])
        );
        assert_eq!(Spec::default().user(), ProcessUser::default());
    }

    #[test]
    fn absent_and_null_read_as_none() {
        let spec: Spec = serde_json::from_str(r#"{"root": null, "linux": {}}"#).unwrap();
        assert!(spec.root().is_none());
        assert!(spec.linux.as_ref().unwrap().resources.is_none());
        assert!(spec.device_rules().is_empty());
        assert!(serde_json::from_str::<Spec>(r#"{"root": {"path": 3}}"#).is_err());
    }

    fn env(vars: &[&str]) -> EnvOnly {
        serde_json::from_value(serde_json::json!({"process": {"env": vars}})).unwrap()
    }

    #[test]
    fn pre_check() {
        let p = "DOCKER_RESOURCE_";
        assert!(!may_request(&env(&["PATH=/bin"]), p));
        assert!(!may_request(&env(&[]), p));
        assert!(!may_request(&EnvOnly::default(), p));
        assert!(!may_request(&env(&["AMD_VISIBLE_DEVICES=void"]), p));
        assert!(!may_request(&env(&["AMD_VISIBLE_DEVICES="]), p));
        // AMD_VISIBLE_DEVICES decides over a Swarm variable, as in resolution.
        assert!(!may_request(
            &env(&["DOCKER_RESOURCE_GPU=1", "AMD_VISIBLE_DEVICES=void"]),
            p
        ));
        assert!(may_request(&env(&["AMD_VISIBLE_DEVICES=0"]), p));
        assert!(may_request(&env(&["AMD_VISIBLE_DEVICES=none"]), p));
        assert!(
            may_request(&env(&["AMD_VISIBLE_DEVICES=0,,x"]), p),
            "errors get reported"
        );
        assert!(may_request(&env(&["DOCKER_RESOURCE_GPU=0x1"]), p));
    }

    fn doc_requests_gpu(doc: &Value, swarm: &str) -> bool {
        requests_gpu(DocView(doc).env().into_iter(), swarm)
    }

    #[test]
    fn gpu_requests() {
        let spec = |env: &[&str]| serde_json::json!({"ociVersion": "1.0.2", "process": {"env": env}, "root": {"path": "rootfs"}});
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
            assert_eq!(doc_requests_gpu(&spec(&env), swarm), want, "{env:?}");
        }
        assert!(!doc_requests_gpu(&serde_json::json!({}), swarm));
        assert!(!doc_requests_gpu(
            &serde_json::json!({"process": {"env": null}}),
            swarm
        ));
        assert!(!doc_requests_gpu(&spec(&["DOCKER_RESOURCE_GPU=0"]), ""));
    }

    #[test]
    fn doc_view_reads_user_and_privilege_leniently() {
        let user = |uid, gid, extra: &[u32]| ProcessUser {
            uid,
            gid,
            additional_gids: extra.to_vec(),
        };
        let doc = serde_json::json!({"process": {"user": {"uid": 1000, "gid": 1000, "additionalGids": [5]}}});
        assert_eq!(DocView(&doc).user(), user(1000, 1000, &[5]));
        assert_eq!(DocView(&serde_json::json!({})).user(), user(0, 0, &[]));
        assert_eq!(
            DocView(&serde_json::json!({"process": {"user": {"uid": "x"}}})).user(),
            user(0, 0, &[])
        );
        let caps = |b: Value| serde_json::json!({"process": {"capabilities": {"bounding": b}}});
        assert!(DocView(&caps(serde_json::json!(["CAP_CHOWN", "CAP_SYS_ADMIN"]))).privileged());
        assert!(!DocView(&caps(serde_json::json!(["CAP_CHOWN"]))).privileged());
        assert!(!DocView(&caps(serde_json::json!("CAP_SYS_ADMIN"))).privileged());
        let spec: Spec =
            serde_json::from_value(caps(serde_json::json!(["CAP_SYS_ADMIN"]))).unwrap();
        assert!(spec.privileged());
        assert!(!Spec::default().privileged());
    }

    #[test]
    fn only_char_devices_are_read() {
        let doc = br#"{"linux": {"devices": [
            {"path": "/dev/dri/renderD128", "type": "c", "major": 226, "minor": 128},
            {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
            {"path": "/dev/kfd", "type": "c", "major": 238, "minor": 0}]}}"#;
        assert_eq!(char_devices(doc), [(226, 128), (238, 0)]);
        assert!(char_devices(br#"{"process": {}}"#).is_empty());
        assert!(char_devices(b"not json").is_empty());
    }
}
