//! The KFD topology (`<kfd>/topology/nodes/*/properties`): which render minor
//! belongs to which PCI location and unique id, and which GPU and partition a
//! node's `location_id` names ([`place`]).
//!
//! Contract: every encoding of a partition in `location_id` that kernels have
//! shipped is read, so that each KFD GPU node lands on its PCI GPU:
//! - today's (`kfd_topology_add_device`): `location_id = pci_dev_id(pdev)`,
//!   and when the GPU has more than one node, `location_id |= node_id`: the
//!   partition sits in the PCI function bits (MI300X CPX: `0x500`…`0x507`);
//! - a reverted one that put the partition in bits 31:28;
//! - older kernels that gave every partition its GPU's own `location_id`
//!   (partition unknown: the caller orders those by render minor).

use super::pci_address::PciAddress;
use super::sysfs::read_attr;
use std::collections::HashMap;
use std::fs;
use std::path::Path;

/// The parts of one GPU node of the KFD topology that discovery needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KfdNode {
    pub render_minor: u32,
    pub domain: u32,
    pub location_id: u32,
    /// 0 in the file means "not reported" (old kernels); kept as `None`.
    pub unique_id: Option<u64>,
}

/// Parses one `properties` file (`key value` lines). CPU nodes
/// (`drm_render_minor 0`) yield `None`.
pub fn parse_properties(text: &str) -> Option<KfdNode> {
    let mut render_minor = None;
    let mut domain = 0;
    let mut location_id = None;
    let mut unique_id = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let value = value.trim();
        match key {
            "drm_render_minor" => render_minor = value.parse::<u32>().ok(),
            "domain" => domain = value.parse().unwrap_or(0),
            "location_id" => location_id = value.parse().ok(),
            "unique_id" => unique_id = value.parse::<u64>().ok().filter(|&v| v != 0),
            _ => {}
        }
    }
    match (render_minor, location_id) {
        (Some(render_minor), Some(location_id)) if render_minor > 0 => Some(KfdNode {
            render_minor,
            domain,
            location_id,
            unique_id,
        }),
        _ => None,
    }
}

/// Which of `gpus` a KFD node at `domain`/`location_id` belongs to, and its
/// partition number as the `location_id` encodes it (0 when it does not):
/// the exact PCI function first, then the partition in bits 31:28, then the
/// partition OR-ed into the function bits (the GPU with the most function
/// bits in common wins, so a real function `.1` is never taken for `.0`'s
/// partition 1). `None`: no amdgpu device there.
pub fn place(domain: u32, location_id: u32, gpus: &[PciAddress]) -> Option<(usize, u32)> {
    let on_domain = || gpus.iter().enumerate().filter(|(_, g)| g.domain == domain);
    if let Some((i, _)) = on_domain().find(|(_, g)| g.location_id() == location_id) {
        return Some((i, 0));
    }
    let high = location_id >> 28;
    if high != 0 {
        let base = location_id & 0x0fff_ffff;
        if let Some((i, _)) = on_domain().find(|(_, g)| g.location_id() == base) {
            return Some((i, high));
        }
    }
    let function = location_id & 0x7;
    on_domain()
        .filter(|(_, g)| {
            g.location_id() >> 3 == location_id >> 3
                && u32::from(g.function) & function == u32::from(g.function)
        })
        .max_by_key(|(_, g)| g.function)
        .map(|(i, g)| (i, function & !u32::from(g.function)))
}

/// Reads every GPU node below `<kfd_syspath>/topology/nodes`, keyed by render
/// minor. A missing or unreadable topology gives an empty map: discovery then
/// reports the affected GPUs instead of failing.
pub fn read_topology(kfd_syspath: &Path) -> HashMap<u32, KfdNode> {
    let mut nodes = HashMap::new();
    let dir = kfd_syspath.join("topology/nodes");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            log::warn!("cannot read KFD topology {}: {e}", dir.display());
            return nodes;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path().join("properties");
        match read_attr(&path) {
            Ok(text) => {
                if let Some(node) = parse_properties(&text) {
                    nodes.insert(node.render_minor, node);
                }
            }
            Err(e) => log::warn!("cannot read {}: {e}", path.display()),
        }
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_node() {
        let text = "cpu_cores_count 0\nsimd_count 304\nlocation_id 1280\ndomain 0\n\
                    drm_render_minor 128\nunique_id 5526920818386247426\n";
        assert_eq!(
            parse_properties(text),
            Some(KfdNode {
                render_minor: 128,
                domain: 0,
                location_id: 1280,
                unique_id: Some(5526920818386247426)
            })
        );
    }

    #[test]
    fn cpu_node_is_skipped() {
        let text = "cpu_cores_count 64\nsimd_count 0\nlocation_id 0\ndrm_render_minor 0\n";
        assert_eq!(parse_properties(text), None);
    }

    fn addrs(list: &[&str]) -> Vec<PciAddress> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    /// MI300X CPX as real kernels number it (k8s-device-plugin's
    /// `topo-mi300-cpx`: 1280…1287 for bus 05, 9984… for bus 27).
    #[test]
    fn partition_in_function_bits() {
        let gpus = addrs(&["0000:05:00.0", "0000:27:00.0"]);
        assert_eq!(place(0, 1280, &gpus), Some((0, 0)));
        assert_eq!(place(0, 1287, &gpus), Some((0, 7)));
        assert_eq!(place(0, 9985, &gpus), Some((1, 1)));
        assert_eq!(place(1, 1281, &gpus), None, "another PCI domain");
        assert_eq!(place(0, 0x600, &gpus), None, "no GPU on bus 06");
    }

    #[test]
    fn partition_in_bits_31_28_and_unencoded() {
        let gpus = addrs(&["0000:05:00.0"]);
        assert_eq!(place(0, (3 << 28) | 0x500, &gpus), Some((0, 3)));
        assert_eq!(place(0, 0x500, &gpus), Some((0, 0)));
    }

    /// A real PCI function is matched exactly, never as another's partition.
    #[test]
    fn exact_function_wins() {
        let gpus = addrs(&["0000:05:00.0", "0000:05:00.1"]);
        assert_eq!(place(0, 0x501, &gpus), Some((1, 0)));
        assert_eq!(place(0, 0x503, &gpus), Some((1, 2)));
        assert_eq!(place(0, 0x502, &gpus), Some((0, 2)));
    }

    #[test]
    fn zero_unique_id_is_unknown() {
        let text = "location_id 768\ndrm_render_minor 129\nunique_id 0\n";
        assert_eq!(parse_properties(text).unwrap().unique_id, None);
    }
}
