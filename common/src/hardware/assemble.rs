//! Puts the GPUs and partitions found in the one index order and numbers
//! them ([`assemble`]): by PCI address, then by partition as the KFD
//! topology places it ([`place`]), then by render minor.
//!
//! Contract: pure: no file is read, nothing but the log is written; a GPU
//! without a KFD node is kept (warned about when the topology was read), a
//! partition without one is inactive and left out.

use super::enumerate::{DrmPair, PciGpu};
use super::inventory::Gpu;
use super::kfd_topology::{place, KfdNode};
use super::pci_address::PciAddress;
use std::collections::{BTreeMap, HashMap};

/// Puts GPUs and partitions in the documented order and numbers them: one
/// entry per KFD GPU node, by PCI address with the partition as the KFD
/// `location_id` encodes it ([`place`]; rocm-smi's and amd-smi's order), then
/// by render minor. A partition device is placed on its GPU by its KFD node
/// only (sysfs does not link it to the PCI device); one without a KFD node is
/// inactive (a GPU in SPX keeps its xcp devices).
pub(super) fn assemble(
    mut pci_gpus: Vec<PciGpu>,
    partitions: BTreeMap<String, DrmPair>,
    topology: Option<&HashMap<u32, KfdNode>>,
) -> (Vec<Gpu>, Vec<DrmPair>) {
    pci_gpus.sort_by_key(|g| g.address);
    let empty = HashMap::new();
    let (topology, warn_missing) = match topology {
        Some(t) => (t, true),
        None => (&empty, false),
    };
    let addresses: Vec<PciAddress> = pci_gpus.iter().map(|g| g.address).collect();
    let kfd = |pair: &DrmPair| pair.render_minor().and_then(|m| topology.get(&m));
    // (partition as encoded, render minor, nodes) per GPU.
    let mut units: Vec<Vec<(u32, u32, DrmPair)>> = vec![Vec::new(); pci_gpus.len()];
    for (i, gpu) in pci_gpus.iter().enumerate() {
        let node = kfd(&gpu.nodes);
        if warn_missing && node.is_none() {
            log::warn!(
                "GPU {} ({}) has no KFD topology node: no unique id, and ROCm may not see it",
                gpu.address,
                gpu.syspath.display()
            );
        }
        let partition = node
            .and_then(|n| place(n.domain, n.location_id, &addresses))
            .filter(|&(owner, _)| owner == i)
            .map_or(0, |(_, p)| p);
        let minor = gpu.nodes.render_minor().unwrap_or(u32::MAX);
        units[i].push((partition, minor, gpu.nodes.clone()));
    }
    for (name, pair) in partitions {
        // Inactive partitions have no KFD node: not GPUs a container could use.
        let Some(node) = kfd(&pair) else {
            log::debug!("{name}: no KFD topology node, partition inactive; skipped");
            continue;
        };
        match place(node.domain, node.location_id, &addresses) {
            Some((owner, partition)) => units[owner].push((partition, node.render_minor, pair)),
            None => log::warn!(
                "{name}: KFD places it on {} (location_id {:#x}), where there is no amdgpu \
                 device; skipped",
                PciAddress::from_location(node.domain, node.location_id & 0x0fff_ffff),
                node.location_id
            ),
        }
    }

    let mut gpus = Vec::new();
    let mut nodes = Vec::new();
    for (gpu, mut units) in pci_gpus.into_iter().zip(units) {
        units.sort_by_key(|&(partition, minor, _)| (partition, minor));
        let partitioned = units.len() > 1;
        for (k, (_, _, pair)) in units.into_iter().enumerate() {
            gpus.push(Gpu {
                index: gpus.len(),
                pci_address: gpu.address,
                partition: partitioned.then_some(k as u32),
                unique_id: kfd(&pair).and_then(|n| n.unique_id),
                card: None,
                render: None,
                compute_partition: gpu.compute_partition.clone(),
                memory_partition: gpu.memory_partition.clone(),
            });
            nodes.push(pair);
        }
    }
    (gpus, nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::enumerate::Found;

    fn found(name: String, minor: u32) -> Option<Found> {
        Some(Found {
            syspath: format!("/sys/devices/x/drm/{name}").into(),
            name,
            minor,
        })
    }

    fn pair(card: u32, render: u32) -> DrmPair {
        DrmPair {
            card: found(format!("card{card}"), card),
            render: found(format!("renderD{render}"), render),
        }
    }

    fn pci(addr: &str, card: u32, render: u32) -> PciGpu {
        PciGpu {
            address: addr.parse().unwrap(),
            syspath: format!("/sys/devices/{addr}").into(),
            nodes: pair(card, render),
            compute_partition: None,
            memory_partition: None,
        }
    }

    fn kfd_node(addr: &str, render_minor: u32, uid: u64) -> (u32, KfdNode) {
        let a: PciAddress = addr.parse().unwrap();
        let node = KfdNode {
            render_minor,
            domain: a.domain,
            location_id: a.location_id(),
            unique_id: Some(uid),
        };
        (render_minor, node)
    }

    #[test]
    fn orders_by_pci_address_then_partition_render_minor() {
        let gpus = vec![pci("0000:c1:00.0", 1, 128), pci("0000:03:00.0", 2, 129)];
        let mut parts = BTreeMap::new();
        parts.insert("amdgpu_xcp.1".to_string(), pair(4, 131));
        parts.insert("amdgpu_xcp.0".to_string(), pair(3, 130));
        parts.insert("amdgpu_xcp.2".to_string(), pair(5, 132)); // inactive: no KFD node
        let topology: HashMap<_, _> = [
            kfd_node("0000:c1:00.0", 128, 10),
            kfd_node("0000:03:00.0", 129, 20),
            kfd_node("0000:03:00.0", 131, 22),
            kfd_node("0000:03:00.0", 130, 21),
        ]
        .into_iter()
        .collect();
        let (gpus, nodes) = assemble(gpus, parts, Some(&topology));
        let got: Vec<_> = gpus
            .iter()
            .zip(&nodes)
            .map(|(g, n)| {
                (
                    g.index,
                    g.pci_address.to_string(),
                    g.partition,
                    g.unique_id,
                    n.render_minor().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (0, "0000:03:00.0".to_string(), Some(0), Some(20), 129),
                (1, "0000:03:00.0".to_string(), Some(1), Some(21), 130),
                (2, "0000:03:00.0".to_string(), Some(2), Some(22), 131),
                (3, "0000:c1:00.0".to_string(), None, Some(10), 128),
            ]
        );
    }

    /// Real kernels put the partition into `location_id`'s function bits
    /// (MI308X CPX across PCI domains, k8s-device-plugin's capture); the
    /// order follows it even where render minors do not, and a partition
    /// device with a render node only is served.
    #[test]
    fn places_partitions_by_encoded_location() {
        let gpus = vec![pci("0001:0b:00.0", 32, 160), pci("0000:0a:00.0", 0, 128)];
        let mut parts = BTreeMap::new();
        let render_only = |render: u32| DrmPair {
            card: None,
            render: found(format!("renderD{render}"), render),
        };
        parts.insert("amdgpu_xcp.0".to_string(), render_only(129));
        parts.insert("amdgpu_xcp.1".to_string(), pair(2, 130));
        parts.insert("amdgpu_xcp.7".to_string(), pair(33, 161));
        parts.insert("amdgpu_xcp.8".to_string(), pair(34, 162)); // inactive
        let node = |render_minor, domain, location_id| {
            (
                render_minor,
                KfdNode {
                    render_minor,
                    domain,
                    location_id,
                    unique_id: Some(u64::from(render_minor)),
                },
            )
        };
        let topology: HashMap<_, _> = [
            node(128, 0, 0xa00),
            node(129, 0, 0xa02), // partition 2 on a lower minor than partition 1
            node(130, 0, 0xa01),
            node(160, 1, 0xb00),
            node(161, 1, 0xb01),
        ]
        .into_iter()
        .collect();
        let (gpus, nodes) = assemble(gpus, parts, Some(&topology));
        let got: Vec<_> = gpus
            .iter()
            .zip(&nodes)
            .map(|(g, n)| {
                (
                    g.pci_address.to_string(),
                    g.partition,
                    n.render_minor().unwrap(),
                    n.card.is_some(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("0000:0a:00.0".to_string(), Some(0), 128, true),
                ("0000:0a:00.0".to_string(), Some(1), 130, true),
                ("0000:0a:00.0".to_string(), Some(2), 129, false),
                ("0001:0b:00.0".to_string(), Some(0), 160, true),
                ("0001:0b:00.0".to_string(), Some(1), 161, true),
            ]
        );
    }

    #[test]
    fn gpu_without_kfd_node_is_kept() {
        let (gpus, _) = assemble(
            vec![pci("0000:03:00.0", 1, 128)],
            BTreeMap::new(),
            Some(&HashMap::new()),
        );
        assert_eq!(gpus.len(), 1);
        assert_eq!(gpus[0].unique_id, None);
    }
}
