//! Builds the CDI spec for an inventory: one device per GPU (or partition) by
//! index and, when asked, by unique id, plus `all`; `/dev/kfd` once at the
//! spec level, with the host groups a non-root user needs for the nodes
//! (`additionalGids`, CDI 0.7.0) when the host's nodes are not world-rw.

use super::names::{validate_device_name, validate_kind, NameError};
use super::spec::{CdiContainerEdits, CdiDeviceNode, Device, Spec};
use super::version::minimum_version;
use crate::access::{cdi_gids, NodeKind};
use crate::edits::ContainerEdits;
use crate::hardware::{DeviceNode, Inventory};
use crate::request::Selection;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameStrategy {
    /// `amd.com/gpu=0`
    Index,
    /// `amd.com/gpu=0x1a2b…` (the KFD unique id)
    Uuid,
}

impl FromStr for NameStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "index" => Ok(NameStrategy::Index),
            "uuid" => Ok(NameStrategy::Uuid),
            other => Err(format!(
                "unknown device name strategy {other:?} (use index or uuid)"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub vendor: String,
    pub class: String,
    pub strategies: Vec<NameStrategy>,
    /// The kinds of node whose host group goes into the spec-level
    /// `additionalGids` when the node is not world-rw (`[devices]
    /// user-access`); empty: none, and the spec keeps a version old
    /// engines read.
    pub user_access: Vec<NodeKind>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            vendor: super::DEFAULT_VENDOR.into(),
            class: super::DEFAULT_CLASS.into(),
            strategies: vec![NameStrategy::Index],
            user_access: NodeKind::default_user_access(),
        }
    }
}

pub(crate) fn cdi_node(node: &DeviceNode) -> CdiDeviceNode {
    CdiDeviceNode {
        path: node.path.display().to_string(),
        kind: Some("c".into()),
        major: Some(node.major.into()),
        minor: Some(node.minor.into()),
        // The host's policy, as `docker run --device` and the live hook keep
        // it: mode, owner and group. Without them the runtimes make the node
        // 0666 and Podman gives it to the container's user (card nodes
        // included); with them, a non-root user has the access its groups
        // give (`additionalGids` adds the render group where needed).
        file_mode: Some(node.mode & 0o777),
        uid: Some(node.uid),
        gid: Some(node.gid),
        ..Default::default()
    }
}

/// The CDI form of the toolkit's edits (the structure the hook applies too).
fn cdi_edits(edits: &ContainerEdits) -> CdiContainerEdits {
    CdiContainerEdits {
        device_nodes: edits.device_nodes.iter().map(cdi_node).collect(),
        ..Default::default()
    }
}

/// The spec for `inventory`, with the lowest `cdiVersion` it needs.
pub fn generate(inventory: &Inventory, options: &GenerateOptions) -> Result<Spec, NameError> {
    validate_kind(&options.vendor, &options.class)?;
    let mut devices = Vec::new();
    for strategy in &options.strategies {
        for gpu in &inventory.gpus {
            let name = match strategy {
                NameStrategy::Index => gpu.index.to_string(),
                NameStrategy::Uuid => match gpu.unique_id_hex() {
                    Some(id) => id,
                    None => {
                        log::warn!(
                            "GPU {} has no unique id: no uuid-named CDI device for it",
                            gpu.index
                        );
                        continue;
                    }
                },
            };
            validate_device_name(&name)?;
            devices.push(Device {
                name,
                container_edits: cdi_edits(&ContainerEdits::gpus(
                    inventory,
                    &Selection(vec![gpu.index]),
                )),
                ..Default::default()
            });
        }
    }
    if !inventory.gpus.is_empty() {
        devices.push(Device {
            name: "all".into(),
            container_edits: cdi_edits(&ContainerEdits::gpus(
                inventory,
                &Selection((0..inventory.gpus.len()).collect()),
            )),
            ..Default::default()
        });
    }
    let mut spec = Spec {
        cdi_version: String::new(),
        kind: format!("{}/{}", options.vendor, options.class),
        devices,
        // /dev/kfd once, at spec level: CDI applies it with any of the devices.
        container_edits: cdi_edits(&ContainerEdits::shared(inventory)),
        ..Default::default()
    };
    // The groups of every node the spec gives (kfd and all GPUs' nodes): a
    // container using any device gets them, as CDI applies spec-level edits
    // with any device.
    let mut nodes = ContainerEdits::shared(inventory).device_nodes;
    nodes.extend(inventory.gpus.iter().flat_map(|g| g.nodes().cloned()));
    spec.container_edits.additional_gids = cdi_gids(&nodes, &options.user_access);
    spec.cdi_version = minimum_version(&spec).to_string();
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::{DeviceNode, Gpu};

    fn inventory(mode: u32, kfd_gid: u32, render_gid: u32) -> Inventory {
        let node = |path: &str, major, minor, gid| DeviceNode {
            path: path.into(),
            major,
            minor,
            mode,
            uid: 0,
            gid,
        };
        let gpu = |index: usize, card: u32, render: u32| Gpu {
            index,
            pci_address: format!("0000:0{}:00.0", index + 3).parse().expect("pci"),
            partition: None,
            unique_id: None,
            card: Some(node(&format!("/dev/dri/card{card}"), 226, card, 44)),
            render: Some(node(
                &format!("/dev/dri/renderD{render}"),
                226,
                render,
                render_gid,
            )),
            compute_partition: None,
            memory_partition: None,
        };
        Inventory {
            kfd: Some(node("/dev/kfd", 238, 0, kfd_gid)),
            gpus: vec![gpu(0, 1, 128), gpu(1, 2, 129)],
        }
    }

    #[test]
    fn strict_nodes_give_additional_gids_and_need_070() {
        let spec = generate(&inventory(0o660, 110, 109), &GenerateOptions::default()).unwrap();
        assert_eq!(spec.container_edits.additional_gids, [109, 110]);
        assert_eq!(spec.cdi_version, "0.7.0");
        assert!(spec
            .devices
            .iter()
            .all(|d| d.container_edits.additional_gids.is_empty()));
        let with_cards = GenerateOptions {
            user_access: vec![NodeKind::Card, NodeKind::Render, NodeKind::Kfd],
            ..Default::default()
        };
        let spec = generate(&inventory(0o660, 109, 109), &with_cards).unwrap();
        assert_eq!(spec.container_edits.additional_gids, [44, 109]);
    }

    #[test]
    fn world_rw_root_group_or_setting_off_keep_050() {
        for (inv, kinds) in [
            (inventory(0o666, 109, 109), NodeKind::default_user_access()),
            (inventory(0o660, 0, 0), NodeKind::default_user_access()),
            (inventory(0o660, 110, 109), vec![]),
        ] {
            let options = GenerateOptions {
                user_access: kinds,
                ..Default::default()
            };
            let spec = generate(&inv, &options).unwrap();
            assert!(spec.container_edits.additional_gids.is_empty(), "{spec:?}");
            assert_eq!(spec.cdi_version, "0.5.0");
        }
    }
}
