//! Why an inventory is empty: the amdgpu driver is not loaded, or it is
//! loaded and drives no GPU. `amd-ctk cdi list | gpu list | cdi generate`
//! report the two differently and exit non-zero for both (upstream's
//! `amd-ctk` fails when `/sys/module/amdgpu` is missing).
//!
//! Contract: [`require_gpus`] returns `Ok` for an inventory with at least one
//! GPU without looking at /sys; for an empty one it reads only whether
//! [`MODULE_DIR`] exists. Nothing is written.

use super::inventory::Inventory;
use std::path::Path;

/// Present while the amdgpu module is loaded (or built in).
pub const MODULE_DIR: &str = "/sys/module/amdgpu";

/// An inventory without GPUs, explained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoGpuError {
    #[error(
        "no AMD GPU: the amdgpu driver is not loaded ({MODULE_DIR} does not exist); \
         load it with `modprobe amdgpu` (on ROCm hosts it comes with amdgpu-dkms)"
    )]
    DriverNotLoaded,
    #[error(
        "no AMD GPU: the amdgpu driver is loaded ({MODULE_DIR}) but drives no GPU with a \
         drm node; see `dmesg | grep -i amdgpu` and `lspci -d 1002:`"
    )]
    NoGpu,
}

/// `Ok` when the inventory has a GPU; otherwise why it has none.
pub fn require_gpus(inventory: &Inventory) -> Result<(), NoGpuError> {
    require_gpus_with(inventory, Path::new(MODULE_DIR))
}

fn require_gpus_with(inventory: &Inventory, module_dir: &Path) -> Result<(), NoGpuError> {
    if !inventory.is_empty() {
        Ok(())
    } else if module_dir.exists() {
        Err(NoGpuError::NoGpu)
    } else {
        Err(NoGpuError::DriverNotLoaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_inventory_is_explained_by_the_module_dir() {
        let empty = Inventory::default();
        let missing = Path::new("/nonexistent/module/amdgpu");
        assert_eq!(
            require_gpus_with(&empty, missing),
            Err(NoGpuError::DriverNotLoaded)
        );
        let present = std::env::temp_dir();
        assert_eq!(require_gpus_with(&empty, &present), Err(NoGpuError::NoGpu));
        let msg = NoGpuError::DriverNotLoaded.to_string();
        assert!(
            msg.contains("not loaded") && msg.contains(MODULE_DIR),
            "{msg}"
        );
        assert!(NoGpuError::NoGpu.to_string().contains("is loaded"));
    }
}
