//! The tracker's state as the state file holds it ([`State`]): per GPU its
//! identity when the state was made, its [`Mode`] and its holders; and the
//! rules on it: a fresh state for an inventory, the check that it was made
//! for these GPUs, reclaiming holders whose process is gone (the one read
//! here: `/proc`, through [`Holder::alive`]). Nothing here touches the
//! state file.

use super::error::TrackerError;
use super::holder::Holder;
use crate::hardware::{Gpu, Inventory};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Shared,
    Exclusive,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Shared => "Shared",
            Mode::Exclusive => "Exclusive",
        })
    }
}

/// One GPU's entry: its identity when the state was made, mode and holders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuState {
    pub index: usize,
    /// PCI address, with `#k` for the k-th compute partition.
    pub location: String,
    /// `0x…`, or absent without a KFD node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
    pub mode: Mode,
    #[serde(default)]
    pub holders: Vec<Holder>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub enabled: bool,
    #[serde(default)]
    pub gpus: Vec<GpuState>,
}

pub(super) fn fresh_gpus(inventory: &Inventory) -> Vec<GpuState> {
    inventory
        .gpus
        .iter()
        .map(|g| GpuState {
            index: g.index,
            location: location(g),
            unique_id: g.unique_id_hex(),
            mode: Mode::Shared,
            holders: Vec::new(),
        })
        .collect()
}

fn location(g: &Gpu) -> String {
    match g.partition {
        Some(k) => format!("{}#{k}", g.pci_address),
        None => g.pci_address.to_string(),
    }
}

impl State {
    /// Checks the state was made for these GPUs.
    pub(super) fn check_inventory(&self, inventory: &Inventory) -> Result<(), TrackerError> {
        let now = fresh_gpus(inventory);
        if now.len() != self.gpus.len() {
            return Err(TrackerError::Mismatch {
                detail: format!("{} GPUs then, {} now", self.gpus.len(), now.len()),
            });
        }
        for (was, is) in self.gpus.iter().zip(&now) {
            if was.location != is.location || was.unique_id != is.unique_id {
                return Err(TrackerError::Mismatch {
                    detail: format!(
                        "GPU {} was {} {}, is {} {}",
                        was.index,
                        was.location,
                        was.unique_id.as_deref().unwrap_or("-"),
                        is.location,
                        is.unique_id.as_deref().unwrap_or("-")
                    ),
                });
            }
        }
        Ok(())
    }

    /// Drops holders whose process is gone; true when one was dropped.
    pub(super) fn reclaim(&mut self) -> bool {
        let mut changed = false;
        for g in &mut self.gpus {
            let before = g.holders.len();
            g.holders.retain(Holder::alive);
            changed |= g.holders.len() != before;
        }
        changed
    }
}
