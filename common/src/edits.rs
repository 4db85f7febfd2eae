//! The edits a resolved request makes to a container: the one structure the
//! CDI writer, the live injector and the spec editor all consume.

use crate::hardware::{DeviceNode, Inventory};
use crate::request::Selection;
use std::collections::HashSet;
use std::path::PathBuf;

/// Device nodes to give a container, deduplicated, in a stable order:
/// `/dev/kfd` first, then each selected GPU's card and render node in the
/// order of the selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerEdits {
    pub device_nodes: Vec<DeviceNode>,
}

impl ContainerEdits {
    /// Everything a container with `selection` needs: [`Self::shared`] (when
    /// anything is selected) then [`Self::gpus`]. What the hook applies.
    pub fn for_selection(inventory: &Inventory, selection: &Selection) -> ContainerEdits {
        if selection.0.is_empty() {
            return ContainerEdits::default();
        }
        let mut edits = ContainerEdits::shared(inventory);
        if edits.is_empty() {
            log::warn!("/dev/kfd not found: ROCm compute will not work in the container");
        }
        edits.extend(
            ContainerEdits::gpus(inventory, selection)
                .device_nodes
                .iter(),
        );
        edits
    }

    /// The nodes every GPU container needs whatever GPUs it has: `/dev/kfd`.
    /// (A CDI spec carries them once, at spec level.)
    pub fn shared(inventory: &Inventory) -> ContainerEdits {
        let mut edits = ContainerEdits::default();
        edits.extend(inventory.kfd.iter());
        edits
    }

    /// The selected GPUs' own nodes (card, then render), in selection order.
    /// (A CDI device carries these.)
    pub fn gpus(inventory: &Inventory, selection: &Selection) -> ContainerEdits {
        let mut edits = ContainerEdits::default();
        edits.extend(
            selection
                .0
                .iter()
                .filter_map(|&i| inventory.gpus.get(i))
                .flat_map(|gpu| gpu.nodes()),
        );
        edits
    }

    /// Appends the nodes whose path is not there yet, in order. Linear: the
    /// `all` device of a 256-partition host has 512 nodes.
    fn extend<'a>(&mut self, nodes: impl Iterator<Item = &'a DeviceNode>) {
        let mut seen: HashSet<PathBuf> = self.device_nodes.iter().map(|n| n.path.clone()).collect();
        for node in nodes {
            if seen.insert(node.path.clone()) {
                self.device_nodes.push(node.clone());
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.device_nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::Gpu;

    fn node(path: &str, minor: u32) -> DeviceNode {
        DeviceNode {
            path: path.into(),
            major: 226,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        }
    }

    fn inventory() -> Inventory {
        let gpu = |index, card: u32, render: u32| Gpu {
            index,
            pci_address: "0000:03:00.0".parse().unwrap(),
            partition: None,
            unique_id: None,
            card: Some(node(&format!("/dev/dri/card{card}"), card)),
            render: Some(node(&format!("/dev/dri/renderD{render}"), render)),
            compute_partition: None,
            memory_partition: None,
        };
        Inventory {
            kfd: Some(DeviceNode {
                path: "/dev/kfd".into(),
                major: 238,
                minor: 0,
                mode: 0o666,
                uid: 0,
                gid: 0,
            }),
            gpus: vec![gpu(0, 1, 128), gpu(1, 2, 129)],
        }
    }

    fn paths(e: &ContainerEdits) -> Vec<String> {
        e.device_nodes
            .iter()
            .map(|n| n.path.display().to_string())
            .collect()
    }

    #[test]
    fn kfd_once_then_gpus_in_selection_order() {
        let e = ContainerEdits::for_selection(&inventory(), &Selection(vec![1, 0]));
        assert_eq!(
            paths(&e),
            [
                "/dev/kfd",
                "/dev/dri/card2",
                "/dev/dri/renderD129",
                "/dev/dri/card1",
                "/dev/dri/renderD128"
            ]
        );
    }

    #[test]
    fn duplicates_keep_their_first_place() {
        let e = ContainerEdits::for_selection(&inventory(), &Selection(vec![1, 0, 1]));
        assert_eq!(
            paths(&e),
            [
                "/dev/kfd",
                "/dev/dri/card2",
                "/dev/dri/renderD129",
                "/dev/dri/card1",
                "/dev/dri/renderD128"
            ]
        );
    }

    #[test]
    fn empty_selection_touches_nothing() {
        assert!(ContainerEdits::for_selection(&inventory(), &Selection::default()).is_empty());
    }
}
