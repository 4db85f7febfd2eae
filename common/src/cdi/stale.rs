//! Is a CDI spec still true of this host? Compares a spec with the one the
//! current hardware would give.
//!
//! Contract: only what a container would get counts as stale (devices and
//! their nodes, by path and major:minor). How a spec is laid out is not
//! stale, but [`layout_notes`] says where it differs from what `amd-ctk cdi
//! generate` writes: upstream's layout (`/dev/kfd` in every device rather
//! than once at spec level), a `cdiVersion` newer than its content needs,
//! and whether our hook is in it.

use super::generate::{generate, GenerateOptions, NameStrategy, HOOK_CDI_FLAG};
use super::spec::{CdiContainerEdits, Spec};
use super::version::minimum_version;
use crate::hardware::Inventory;
use std::fmt;

/// One way in which a spec and the host disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discrepancy {
    MissingDevice(String),
    ExtraDevice(String),
    MissingNode {
        device: String,
        path: String,
    },
    ExtraNode {
        device: String,
        path: String,
    },
    ChangedNode {
        device: String,
        path: String,
        spec: String,
        host: String,
    },
}

impl fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Discrepancy::MissingDevice(d) => write!(f, "{d} is on this host but not in the spec"),
            Discrepancy::ExtraDevice(d) => write!(f, "{d} is in the spec but not on this host"),
            Discrepancy::MissingNode { device, path } => {
                write!(f, "{device}: {path} is on this host but not in the spec")
            }
            Discrepancy::ExtraNode { device, path } => {
                write!(f, "{device}: {path} is in the spec but not on this host")
            }
            Discrepancy::ChangedNode {
                device,
                path,
                spec,
                host,
            } => {
                write!(
                    f,
                    "{device}: {path} is {spec} in the spec but {host} on this host"
                )
            }
        }
    }
}

fn majmin(major: Option<i64>, minor: Option<i64>) -> String {
    let part = |v: Option<i64>| v.map_or("?".to_string(), |v| v.to_string());
    format!("{}:{}", part(major), part(minor))
}

/// `shared`: the paths the host gives at spec level (`/dev/kfd`); a spec
/// that repeats them inside a device (upstream's layout) is not stale for it.
fn compare_edits(
    device: &str,
    spec: &CdiContainerEdits,
    host: &CdiContainerEdits,
    shared: &[&str],
    out: &mut Vec<Discrepancy>,
) {
    for h in &host.device_nodes {
        match spec.device_nodes.iter().find(|s| s.path == h.path) {
            None => out.push(Discrepancy::MissingNode {
                device: device.into(),
                path: h.path.clone(),
            }),
            // A spec may leave major:minor out (the runtime then stats the host node).
            Some(s) if s.major.is_some() && (s.major, s.minor) != (h.major, h.minor) => {
                out.push(Discrepancy::ChangedNode {
                    device: device.into(),
                    path: h.path.clone(),
                    spec: majmin(s.major, s.minor),
                    host: majmin(h.major, h.minor),
                })
            }
            Some(_) => {}
        }
    }
    for s in &spec.device_nodes {
        if !host.device_nodes.iter().any(|h| h.path == s.path) && !shared.contains(&s.path.as_str())
        {
            out.push(Discrepancy::ExtraNode {
                device: device.into(),
                path: s.path.clone(),
            });
        }
    }
}

/// Is `path` given by every device of `spec` (and not at spec level)?
fn in_every_device(spec: &Spec, path: &str) -> bool {
    !spec.devices.is_empty()
        && spec.devices.iter().all(|d| {
            d.container_edits
                .device_nodes
                .iter()
                .any(|n| n.path == path)
        })
        && !spec
            .container_edits
            .device_nodes
            .iter()
            .any(|n| n.path == path)
}

/// Everything in which `spec` differs from what `inventory` gives. Devices
/// named by unique id or PCI address are expected only if the spec names
/// any that way (a spec of `--device-name-strategy index` is not stale).
pub fn compare_with_hardware(spec: &Spec, inventory: &Inventory) -> Vec<Discrepancy> {
    let (vendor, class) = spec.kind.split_once('/').unwrap_or((&spec.kind, ""));
    let options = GenerateOptions {
        vendor: vendor.into(),
        class: class.into(),
        strategies: NameStrategy::ALL.to_vec(),
        ..Default::default()
    };
    let host = match generate(inventory, &options) {
        Ok(h) => h,
        // The kind itself is invalid: the schema/name check reports that.
        Err(_) => return Vec::new(),
    };
    let forms: Vec<NameStrategy> = spec
        .devices
        .iter()
        .filter_map(|d| NameStrategy::of_name(&d.name))
        .collect();
    let expected = |name: &str| match NameStrategy::of_name(name) {
        None | Some(NameStrategy::Index) => true,
        Some(form) => forms.contains(&form),
    };
    // Spec-level nodes of the host (/dev/kfd) that the spec gives in every
    // device instead: the same for a container.
    let shared: Vec<&str> = host
        .container_edits
        .device_nodes
        .iter()
        .map(|n| n.path.as_str())
        .filter(|p| in_every_device(spec, p))
        .collect();
    let qualified = |name: &str| format!("{}={name}", spec.kind);
    let mut out = Vec::new();
    let mut host_shared = host.container_edits.clone();
    host_shared
        .device_nodes
        .retain(|n| !shared.contains(&n.path.as_str()));
    compare_edits(
        &spec.kind,
        &spec.container_edits,
        &host_shared,
        &[],
        &mut out,
    );
    for h in &host.devices {
        match spec.devices.iter().find(|d| d.name == h.name) {
            Some(d) => compare_edits(
                &qualified(&d.name),
                &d.container_edits,
                &h.container_edits,
                &shared,
                &mut out,
            ),
            None if expected(&h.name) => out.push(Discrepancy::MissingDevice(qualified(&h.name))),
            None => {}
        }
    }
    for d in &spec.devices {
        if !host.devices.iter().any(|h| h.name == d.name) {
            out.push(Discrepancy::ExtraDevice(qualified(&d.name)));
        }
    }
    out
}

/// Does `spec` carry our hook (`amd-container-hook --cdi …` at some stage)?
pub fn has_our_hook(spec: &Spec) -> bool {
    spec.devices
        .iter()
        .map(|d| &d.container_edits)
        .chain([&spec.container_edits])
        .flat_map(|e| &e.hooks)
        .any(|h| h.args.iter().any(|a| a == HOOK_CDI_FLAG))
}

/// Where `spec` is laid out otherwise than `amd-ctk cdi generate` writes it,
/// with what that means; none of it makes the spec stale. `inventory` gives
/// the spec-level nodes we would write.
pub fn layout_notes(spec: &Spec, inventory: &Inventory) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(kfd) = &inventory.kfd {
        let path = kfd.path.display().to_string();
        if in_every_device(spec, &path) {
            out.push(format!(
                "{path} is in every device (upstream's layout); amd-ctk gives it once at spec                  level: the same for a container"
            ));
        }
    }
    let needed = minimum_version(spec);
    let key = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    if key(&spec.cdi_version) > key(needed) {
        out.push(format!(
            "cdiVersion {} is newer than its content needs ({needed}): engines that know only              older versions refuse it (podman 4.3 reads up to 0.5.0); amd-ctk writes {needed}",
            spec.cdi_version
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdi::spec::{CdiDeviceNode, Device};
    use crate::hardware::{DeviceNode, Gpu};

    fn inventory() -> Inventory {
        let node = |path: &str, major, minor| DeviceNode {
            path: path.into(),
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        Inventory {
            kfd: Some(node("/dev/kfd", 238, 0)),
            gpus: vec![Gpu {
                index: 0,
                pci_address: "0000:c1:00.0".parse().expect("pci"),
                partition: None,
                unique_id: Some(0x1c2b),
                card: Some(node("/dev/dri/card1", 226, 1)),
                render: Some(node("/dev/dri/renderD128", 226, 128)),
                compute_partition: None,
                memory_partition: None,
            }],
        }
    }

    /// Upstream's layout: `/dev/kfd` in every device, none at spec level,
    /// cdiVersion 0.6.0, names `0` and `all`. Not stale; the notes say what
    /// differs. Control: a spec without `/dev/kfd` at all is stale.
    #[test]
    fn upstreams_layout_is_noted_not_stale() {
        let node = |path: &str, minor| CdiDeviceNode {
            path: path.into(),
            kind: Some("c".into()),
            major: Some(if path == "/dev/kfd" { 238 } else { 226 }),
            minor: Some(minor),
            ..Default::default()
        };
        let device = |name: &str| Device {
            name: name.into(),
            container_edits: CdiContainerEdits {
                device_nodes: vec![
                    node("/dev/dri/card1", 1),
                    node("/dev/dri/renderD128", 128),
                    node("/dev/kfd", 0),
                ],
                ..Default::default()
            },
            ..Default::default()
        };
        let spec = Spec {
            cdi_version: "0.6.0".into(),
            kind: "amd.com/gpu".into(),
            devices: vec![device("0"), device("all")],
            ..Default::default()
        };
        let inv = inventory();
        assert_eq!(compare_with_hardware(&spec, &inv), []);
        let notes = layout_notes(&spec, &inv);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].contains("/dev/kfd is in every device"),
            "{notes:?}"
        );
        assert!(notes[1].contains("cdiVersion 0.6.0 is newer"), "{notes:?}");
        assert!(!has_our_hook(&spec));
        let mut without_kfd = spec.clone();
        for d in &mut without_kfd.devices {
            d.container_edits.device_nodes.pop();
        }
        let found = compare_with_hardware(&without_kfd, &inv);
        assert_eq!(
            found,
            [Discrepancy::MissingNode {
                device: "amd.com/gpu".into(),
                path: "/dev/kfd".into()
            }]
        );
    }
}
