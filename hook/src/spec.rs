//! The parts of a container's OCI runtime spec (`config.json`) the live
//! injection reads: `root.path`, `linux.resources.devices`,
//! `process.capabilities.bounding` (the admin's policy on unprivileged
//! requests) and `process.user` (a non-root user's access to the nodes).
//!
//! `oci_spec::runtime::Spec` describes the whole document; deserializing it
//! built several hundred kilobytes of code into the hook (a regex engine
//! among them, for `process.execCPUAffinity`), and every pointer in those
//! tables is a relocation the dynamic loader applies at *every* container
//! start, GPU or not. This view keeps `oci_spec`'s accessor names, so callers
//! read it the same way, and ignores everything else in the document.
//!
//! Contract: a field that is absent or `null` reads as `None`, as in
//! `oci_spec`; a present field of the wrong shape is an error; unknown fields
//! are ignored. Device rules are `oci_spec`'s own type.

use amd_container_common::access::ProcessUser;
use oci_spec::runtime::LinuxDeviceCgroup;
use serde::Deserialize;
use std::path::PathBuf;

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

    /// Is CAP_SYS_ADMIN in the container's bounding set (a privileged
    /// container)?
    pub fn has_sys_admin_bounding(&self) -> bool {
        self.process
            .as_ref()
            .and_then(|p| p.capabilities.as_ref())
            .and_then(|c| c.bounding.as_ref())
            .is_some_and(|b| b.iter().any(|c| c == "CAP_SYS_ADMIN"))
    }
}

impl Spec {
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
}
