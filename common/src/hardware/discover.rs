//! Discovery's entry points: [`scan`] gives the host's GPUs in index order
//! without their nodes, [`Scan::with_nodes`] adds the nodes of the GPUs a
//! caller asks for, [`discover`] asks for all.
//!
//! Contract: libudev says which GPUs exist, sysfs gives their nodes
//! ([`super::enumerate`]); the KFD topology places compute partitions by
//! their render node ([`super::kfd_topology`], [`super::assemble`]). Each
//! node's numbers and name (card, render, `/dev/kfd`) come from its own
//! sysfs `uevent`, read only for the GPUs a caller asks for, with one
//! read(2) per file ([`super::sysfs`]). This runs in the hook at every GPU
//! container start: GPUs of other drivers and nodes of GPUs a container does
//! not get cost nothing more.

use super::assemble::assemble;
use super::enumerate::{confirm_with_udev, drm_parents, warn_about_gpus_without_drm};
use super::enumerate::{DiscoveryError, DrmPair, DrmParents, Found};
use super::inventory::Inventory;
use super::kfd_topology::read_topology;
use super::sysfs::{class_syspath, device_node, kfd_dir, KFD_CLASS};
use std::collections::HashMap;
use std::path::PathBuf;

/// What a caller needs besides the GPUs, their nodes and the index order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detail {
    /// KFD unique ids ([`Gpu::unique_id`](super::Gpu::unique_id); without them `None`, and unusable
    /// GPUs (no KFD node, no drm node) are not warned about). The KFD
    /// topology is read anyway when the host has compute partitions: it
    /// places them.
    pub unique_ids: bool,
    /// `current_compute_partition` / `current_memory_partition`.
    pub partition_modes: bool,
}

impl Detail {
    pub const ALL: Detail = Detail {
        unique_ids: true,
        partition_modes: true,
    };
}

/// Enumerates the host's AMD GPUs with every detail and every node. A host
/// without the amdgpu driver gives an empty inventory, not an error.
pub fn discover() -> Result<Inventory, DiscoveryError> {
    discover_with(Detail::ALL)
}

/// [`discover`], reading only the details asked for.
pub fn discover_with(detail: Detail) -> Result<Inventory, DiscoveryError> {
    scan(detail)?.with_all_nodes()
}

/// The host's GPUs in index order, before any node is read: what resolving
/// a request needs. [`Scan::with_nodes`] adds the nodes.
pub struct Scan {
    /// Every GPU, no node (`card`, `render` and `kfd` are `None`).
    gpus: Inventory,
    /// The nodes of `gpus[i]`.
    nodes: Vec<DrmPair>,
    /// The kfd device's directory, when the host has one.
    kfd: Option<PathBuf>,
}

impl Scan {
    /// The GPUs without their nodes, for [`crate::request::Request::resolve`].
    pub fn gpus(&self) -> &Inventory {
        &self.gpus
    }

    /// [`Scan::with_nodes`] of every GPU.
    pub fn with_all_nodes(self) -> Result<Inventory, DiscoveryError> {
        let all: Vec<usize> = (0..self.gpus.gpus.len()).collect();
        self.with_nodes(&all)
    }

    /// The inventory with the nodes of the GPUs at `indices` and `/dev/kfd`,
    /// each from its sysfs `uevent`; the other GPUs keep none.
    pub fn with_nodes(self, indices: &[usize]) -> Result<Inventory, DiscoveryError> {
        let mut inventory = self.gpus;
        let node = |found: &Option<Found>| {
            let found = found.as_ref()?;
            device_node(&found.syspath, &found.name)
        };
        for &i in indices {
            if let (Some(gpu), Some(pair)) = (inventory.gpus.get_mut(i), self.nodes.get(i)) {
                gpu.card = node(&pair.card);
                gpu.render = node(&pair.render);
            }
        }
        inventory.kfd = self.kfd.as_deref().and_then(|dir| device_node(dir, "kfd"));
        Ok(inventory)
    }
}

/// The GPUs in index order with their nodes' sysfs paths: libudev for the
/// GPUs themselves, sysfs for everything else.
pub fn scan(detail: Detail) -> Result<Scan, DiscoveryError> {
    let DrmParents {
        candidates,
        partitions,
    } = drm_parents(detail.partition_modes)?;
    let pci_gpus = confirm_with_udev(candidates)?;
    if detail.unique_ids {
        warn_about_gpus_without_drm(&pci_gpus);
    }
    let kfd = class_syspath(KFD_CLASS, "kfd");
    let topology = (detail.unique_ids || !partitions.is_empty())
        .then(|| kfd_dir(kfd.as_deref()).map_or_else(HashMap::new, |dir| read_topology(&dir)));
    let (gpus, nodes) = assemble(pci_gpus, partitions, topology.as_ref());
    Ok(Scan {
        gpus: Inventory { kfd: None, gpus },
        nodes,
        kfd,
    })
}
