//! Builds the CDI spec for an inventory: one device per GPU (or partition) by
//! index and, when asked, by unique id, plus `all`; `/dev/kfd` once at the
//! spec level.

use super::names::{validate_device_name, validate_kind, NameError};
use super::spec::{ContainerEdits, Device, DeviceNode, Spec};
use super::version::minimum_version;
use crate::edits::ContainerEdits as Edits;
use crate::hardware::{self, Inventory};
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
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            vendor: super::DEFAULT_VENDOR.into(),
            class: super::DEFAULT_CLASS.into(),
            strategies: vec![NameStrategy::Index],
        }
    }
}

pub(crate) fn cdi_node(node: &hardware::DeviceNode) -> DeviceNode {
    DeviceNode {
        path: node.path.display().to_string(),
        kind: Some("c".into()),
        major: Some(node.major.into()),
        minor: Some(node.minor.into()),
        // Keep the host's group (render/video) so non-root users in it keep access.
        gid: (node.gid != 0).then_some(node.gid),
        ..Default::default()
    }
}

/// The CDI form of the toolkit's edits (the structure the hook applies too).
fn cdi_edits(edits: &crate::edits::ContainerEdits) -> ContainerEdits {
    ContainerEdits {
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
                container_edits: cdi_edits(&Edits::gpus(inventory, &Selection(vec![gpu.index]))),
                ..Default::default()
            });
        }
    }
    if !inventory.gpus.is_empty() {
        devices.push(Device {
            name: "all".into(),
            container_edits: cdi_edits(&Edits::gpus(
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
        container_edits: cdi_edits(&Edits::shared(inventory)),
        ..Default::default()
    };
    spec.cdi_version = minimum_version(&spec).to_string();
    Ok(spec)
}
