//! The plain picture of the host's GPUs that discovery returns and the rest
//! of the crate uses: [`Inventory`] (every [`Gpu`] in the one index order,
//! `/dev/kfd`), each GPU's [`DeviceNode`]s. Plain data: tests build one by
//! hand. Contract: serialized as `amd-ctk gpu list --format json` prints
//! it (modes in octal, unique ids as `"0x…"` strings).

use super::pci_address::PciAddress;
use serde::Serialize;
use std::path::PathBuf;

/// A character device node on the host, with what a copy of it needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct DeviceNode {
    pub path: PathBuf,
    pub major: u32,
    pub minor: u32,
    /// Permission bits of the host node (`st_mode & 0o7777`); shown in octal.
    #[serde(serialize_with = "octal")]
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

fn octal<S: serde::Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{mode:04o}"))
}

fn hex_id<S: serde::Serializer>(id: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.collect_str(&format_args!("{id:#x}")),
        None => s.serialize_none(),
    }
}

/// One addressable GPU: a whole physical GPU, or one compute partition of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gpu {
    /// Position in the documented order (see [`Inventory`]).
    pub index: usize,
    /// PCI address of the physical GPU (shared by all its partitions).
    pub pci_address: PciAddress,
    /// `Some(k)` for the k-th compute partition of a partitioned GPU.
    pub partition: Option<u32>,
    /// KFD `unique_id`; `None` when the GPU has no KFD topology node.
    /// Serialized as a `"0x…"` string: a 64-bit integer does not survive
    /// JSON readers that use doubles (jq, JavaScript).
    #[serde(serialize_with = "hex_id")]
    pub unique_id: Option<u64>,
    pub card: Option<DeviceNode>,
    pub render: Option<DeviceNode>,
    /// `current_compute_partition` of the physical GPU (e.g. `SPX`, `CPX`).
    pub compute_partition: Option<String>,
    /// `current_memory_partition` of the physical GPU (e.g. `NPS1`).
    pub memory_partition: Option<String>,
}

impl Gpu {
    /// The GPU's own nodes, card first, then render.
    pub fn nodes(&self) -> impl Iterator<Item = &DeviceNode> {
        self.card.iter().chain(self.render.iter())
    }

    /// `0x…` form of the unique id, as users write it in `AMD_VISIBLE_DEVICES`.
    pub fn unique_id_hex(&self) -> Option<String> {
        self.unique_id.map(|id| format!("{id:#x}"))
    }

    /// `SPX/NPS1`-style summary of the partition mode, `N/A` when unknown.
    pub fn partition_mode(&self) -> String {
        match (&self.compute_partition, &self.memory_partition) {
            (Some(c), Some(m)) => format!("{c}/{m}"),
            (Some(c), None) => c.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => "N/A".to_string(),
        }
    }
}

/// Everything discovered on the host.
///
/// The order of `gpus` is the one order the whole toolkit uses for indices:
/// physical GPUs by PCI address (domain, bus, device, function). A GPU in a
/// partitioned mode (e.g. CPX) takes one entry per compute partition, in a row:
/// the partition served by the PCI device's own nodes first, then the others by
/// render minor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Inventory {
    /// `/dev/kfd`, shared by every GPU; `None` without the amdgpu KFD.
    pub kfd: Option<DeviceNode>,
    pub gpus: Vec<Gpu>,
}

impl Inventory {
    pub fn is_empty(&self) -> bool {
        self.gpus.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unique id above 2^53 comes out exactly, as a string jq keeps.
    #[test]
    fn unique_id_serializes_as_a_hex_string() {
        let gpu = Gpu {
            index: 0,
            pci_address: "0000:03:00.0".parse().unwrap(),
            partition: None,
            unique_id: Some(0xe8419c9d6a1f3ffe),
            card: None,
            render: None,
            compute_partition: None,
            memory_partition: None,
        };
        let v = serde_json::to_value(&gpu).unwrap();
        assert_eq!(v["unique_id"], "0xe8419c9d6a1f3ffe");
        let none = Gpu {
            unique_id: None,
            ..gpu
        };
        assert!(serde_json::to_value(&none).unwrap()["unique_id"].is_null());
    }
}
