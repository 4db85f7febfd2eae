//! The minimal-version rule: a spec carries the lowest `cdiVersion` its content
//! needs, because consumers reject versions newer than they know (podman 4.3.1
//! stops at 0.5.0). Mirrors the reference implementation's feature checks.

use super::spec::{CdiContainerEdits, Spec};

const EARLIEST: &str = "0.3.0";

/// intelRdt fields of 1.1.0: `schemata`, `enableMonitoring`.
fn rdt_v110(e: &CdiContainerEdits) -> bool {
    e.intel_rdt.as_ref().is_some_and(|r| {
        r.get("schemata").is_some_and(|v| !v.is_null())
            || r.get("enableMonitoring").and_then(|v| v.as_bool()) == Some(true)
    })
}

/// The lowest CDI version that can carry `spec`.
pub fn minimum_version(spec: &Spec) -> &'static str {
    let all_edits = || {
        spec.devices
            .iter()
            .map(|d| &d.container_edits)
            .chain([&spec.container_edits])
    };
    let any_edit = |f: fn(&CdiContainerEdits) -> bool| all_edits().any(f);
    // 1.0.0 and 0.8.0 added no spec field (the reference's requiresV100 and
    // requiresV080 are always false).
    if any_edit(|e| !e.net_devices.is_empty() || rdt_v110(e)) {
        return "1.1.0";
    }
    if any_edit(|e| e.intel_rdt.is_some() || !e.additional_gids.is_empty()) {
        return "0.7.0";
    }
    let class_has_dot = spec
        .kind
        .split_once('/')
        .is_some_and(|(_, class)| class.contains('.'));
    if !spec.annotations.is_empty()
        || spec.devices.iter().any(|d| !d.annotations.is_empty())
        || class_has_dot
    {
        return "0.6.0";
    }
    let name_starts_non_letter = spec.devices.iter().any(|d| {
        d.name
            .chars()
            .next()
            .is_some_and(|c| !c.is_ascii_alphabetic())
    });
    if name_starts_non_letter || any_edit(|e| e.device_nodes.iter().any(|n| n.host_path.is_some()))
    {
        return "0.5.0";
    }
    if any_edit(|e| e.mounts.iter().any(|m| m.kind.is_some())) {
        return "0.4.0";
    }
    EARLIEST
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdi::spec::{CdiDeviceNode, Device, Mount};

    fn spec_with(name: &str) -> Spec {
        Spec {
            cdi_version: String::new(),
            kind: "amd.com/gpu".into(),
            devices: vec![Device {
                name: name.into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn letters_only_is_earliest() {
        assert_eq!(minimum_version(&spec_with("all")), "0.3.0");
    }

    #[test]
    fn numeric_name_or_host_path_needs_050() {
        assert_eq!(minimum_version(&spec_with("0")), "0.5.0");
        let mut s = spec_with("all");
        s.container_edits.device_nodes.push(CdiDeviceNode {
            path: "/dev/kfd".into(),
            host_path: Some("/dev/kfd".into()),
            ..Default::default()
        });
        assert_eq!(minimum_version(&s), "0.5.0");
    }

    #[test]
    fn mount_type_annotations_and_gids() {
        let mut s = spec_with("all");
        s.container_edits.mounts.push(Mount {
            kind: Some("bind".into()),
            ..Default::default()
        });
        assert_eq!(minimum_version(&s), "0.4.0");
        s.annotations.insert("a".into(), "b".into());
        assert_eq!(minimum_version(&s), "0.6.0");
        s.devices[0].container_edits.additional_gids.push(44);
        assert_eq!(minimum_version(&s), "0.7.0");
        s.container_edits.intel_rdt = Some(serde_json::json!({"closID": "x"}));
        assert_eq!(minimum_version(&s), "0.7.0");
        let mut dotted = spec_with("all");
        dotted.kind = "amd.com/gpu.partition".into();
        assert_eq!(minimum_version(&dotted), "0.6.0");
    }

    /// The reference's requiresV110: netDevices, or intelRdt's schemata or
    /// enableMonitoring, at spec or device level.
    #[test]
    fn net_devices_and_newer_rdt_need_110() {
        let mut s = spec_with("all");
        s.devices[0]
            .container_edits
            .net_devices
            .push(serde_json::json!({"hostInterfaceName": "eth1", "name": "net1"}));
        assert_eq!(minimum_version(&s), "1.1.0");
        for rdt in [
            serde_json::json!({"schemata": ["L3:0=f"]}),
            serde_json::json!({"enableMonitoring": true}),
        ] {
            let mut s = spec_with("all");
            s.container_edits.intel_rdt = Some(rdt);
            assert_eq!(minimum_version(&s), "1.1.0");
        }
    }
}
