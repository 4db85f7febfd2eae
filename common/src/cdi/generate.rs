//! Builds the CDI spec for an inventory: a device for every selector form of
//! every GPU (or partition) — its index, its unique id as `gpu list` prints it
//! (`0x…`) and its PCI address (`0000:c1:00.0`: the physical GPU with all its
//! partitions) — plus `all`; `/dev/kfd` once at the spec level, with the host
//! groups a non-root user needs for the nodes (`additionalGids`, CDI 0.7.0)
//! when the host's nodes are not world-rw; and, unless asked not to, our hook
//! at `createRuntime` and `poststop` at the spec level (so once per
//! container, whichever of our devices it got).
//!
//! Contract: what each name gives is what `AMD_VISIBLE_DEVICES=NAME` selects
//! (the name goes through [`crate::resolve::select`], the request's parse and
//! selection), so the two paths agree. Names of different forms cannot collide: an index is
//! decimal digits only, a unique id starts with `0x` and has no `:`, a PCI
//! address always has `:`, and `all` has none of these; within a form a name
//! is written once (partitions sharing a unique id or a PCI address share
//! the device).

use super::names::{validate_device_name, validate_kind, NameError};
use super::spec::{CdiContainerEdits, CdiDeviceNode, Device, Hook, Spec};
use super::version::minimum_version;
use crate::access::{cdi_gids, NodeKind};
use crate::edits::ContainerEdits;
use crate::hardware::{DeviceNode, Inventory};
use crate::request::{RequestVar, Selection};
use std::str::FromStr;

/// The arguments of our hook in a CDI spec, before the stage:
/// `amd-container-hook --cdi STAGE` (the hook then takes the container's
/// GPUs from its `linux.devices`).
pub const HOOK_CDI_FLAG: &str = "--cdi";
/// The stages our hook is registered at in a CDI spec.
pub const HOOK_STAGES: [&str; 2] = ["createRuntime", "poststop"];

/// Our hook as a CDI spec carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOptions {
    /// `[runtime] hook-path`.
    pub path: String,
    /// The hook's whole environment (`RuntimeConfig::hook_env`).
    pub env: Vec<String>,
    /// Seconds; ≤ 0: none.
    pub timeout: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameStrategy {
    /// `amd.com/gpu=0`
    Index,
    /// `amd.com/gpu=0x1a2b…` (the KFD unique id)
    Uuid,
    /// `amd.com/gpu=0000:c1:00.0` (the physical GPU, all its partitions)
    Pci,
}

impl NameStrategy {
    /// Every form, the default.
    pub const ALL: [NameStrategy; 3] = [NameStrategy::Index, NameStrategy::Uuid, NameStrategy::Pci];

    /// The word `--device-name-strategy` takes.
    pub fn name(self) -> &'static str {
        match self {
            NameStrategy::Index => "index",
            NameStrategy::Uuid => "uuid",
            NameStrategy::Pci => "pci",
        }
    }

    /// The form a device name has (`all` has none).
    pub fn of_name(name: &str) -> Option<NameStrategy> {
        if name.contains(':') {
            Some(NameStrategy::Pci)
        } else if name.starts_with("0x") {
            Some(NameStrategy::Uuid)
        } else if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
            Some(NameStrategy::Index)
        } else {
            None
        }
    }
}

impl FromStr for NameStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "index" => Ok(NameStrategy::Index),
            "uuid" => Ok(NameStrategy::Uuid),
            "pci" => Ok(NameStrategy::Pci),
            other => Err(format!(
                "unknown device name strategy {other:?} (use index, uuid or pci)"
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
    /// Our hook at the spec level; `None`: a plain spec (`--no-hooks`).
    pub hook: Option<HookOptions>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            vendor: super::DEFAULT_VENDOR.into(),
            class: super::DEFAULT_CLASS.into(),
            strategies: NameStrategy::ALL.to_vec(),
            user_access: NodeKind::default_user_access(),
            hook: None,
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

/// The name of `gpu` in the form `strategy`; `None` for a GPU without a
/// unique id (uuid form).
fn name_of(gpu: &crate::hardware::Gpu, strategy: NameStrategy) -> Option<String> {
    match strategy {
        NameStrategy::Index => Some(gpu.index.to_string()),
        NameStrategy::Uuid => gpu.unique_id_hex(),
        NameStrategy::Pci => Some(gpu.pci_address.to_string()),
    }
}

/// What `name` selects, as `AMD_VISIBLE_DEVICES=name` would; `None` (with
/// a warning) if the resolver does not take it, which a name built from the
/// inventory never is.
fn select(inventory: &Inventory, kind: &str, name: &str) -> Option<Selection> {
    let var = RequestVar {
        name: kind,
        value: name,
    };
    match crate::resolve::select(&var, inventory) {
        Ok((_, s)) if !s.0.is_empty() => Some(s),
        Ok(_) => None,
        Err(e) => {
            log::warn!("no CDI device {kind}={name}: {e}");
            None
        }
    }
}

/// Our hook's two entries (createRuntime, poststop).
pub fn hook_entries(hook: &HookOptions) -> Vec<Hook> {
    HOOK_STAGES
        .iter()
        .map(|stage| Hook {
            hook_name: (*stage).into(),
            path: hook.path.clone(),
            args: vec![
                "amd-container-hook".into(),
                HOOK_CDI_FLAG.into(),
                (*stage).into(),
            ],
            env: hook.env.clone(),
            timeout: (hook.timeout > 0).then_some(hook.timeout),
        })
        .collect()
}

/// The spec for `inventory`, with the lowest `cdiVersion` it needs.
pub fn generate(inventory: &Inventory, options: &GenerateOptions) -> Result<Spec, NameError> {
    validate_kind(&options.vendor, &options.class)?;
    let kind = format!("{}/{}", options.vendor, options.class);
    let mut devices: Vec<Device> = Vec::new();
    for strategy in &options.strategies {
        for gpu in &inventory.gpus {
            let Some(name) = name_of(gpu, *strategy) else {
                log::warn!(
                    "GPU {} has no unique id: no uuid-named CDI device for it",
                    gpu.index
                );
                continue;
            };
            if devices.iter().any(|d| d.name == name) {
                continue; // another partition of the same GPU named it
            }
            validate_device_name(&name)?;
            let Some(selection) = select(inventory, &kind, &name) else {
                continue;
            };
            devices.push(Device {
                name,
                container_edits: cdi_edits(&ContainerEdits::gpus(inventory, &selection)),
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
        kind,
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
    if let Some(hook) = &options.hook {
        spec.container_edits.hooks = hook_entries(hook);
    }
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
