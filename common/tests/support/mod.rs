//! Shared builders of common's integration tests (`mod support;` in each):
//! device nodes and GPUs of a made-up inventory, numbered the way the
//! kernel numbers a plain host's (card N+1, renderD 128+N).
//!
//! Each test crate uses a subset of these, hence `dead_code` is allowed here.
#![allow(dead_code)]

use amd_container_common::{DeviceNode, Gpu};
use std::path::PathBuf;

/// A DRM node (major 226), 0666 root:`gid`.
pub fn dri_node(path: impl Into<PathBuf>, minor: u32, gid: u32) -> DeviceNode {
    DeviceNode {
        path: path.into(),
        major: 226,
        minor,
        mode: 0o666,
        uid: 0,
        gid,
    }
}

/// GPU `index` at `pci_address`, with card `index + 1` and renderD
/// `128 + index` ([`dri_node`]s of group `gid`), no partition modes.
pub fn gpu(
    index: usize,
    pci_address: &str,
    partition: Option<u32>,
    unique_id: Option<u64>,
    gid: u32,
) -> Gpu {
    let card = index as u32 + 1;
    let render = 128 + index as u32;
    Gpu {
        index,
        pci_address: pci_address.parse().unwrap(),
        partition,
        unique_id,
        card: Some(dri_node(format!("/dev/dri/card{card}"), card, gid)),
        render: Some(dri_node(format!("/dev/dri/renderD{render}"), render, gid)),
        compute_partition: None,
        memory_partition: None,
    }
}
