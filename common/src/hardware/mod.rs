//! What the host has: AMD GPUs, their compute partitions and device nodes.
//!
//! Discovery: libudev finds the GPUs, sysfs gives their nodes ([`discover()`]);
//! the rest of the crate only sees the plain [`Inventory`] it returns, so
//! tests can also build one by hand.
//!
//! Layout, each file using only those above it: `pci_address` and
//! `inventory` (plain types), `sysfs` (attribute and node reads),
//! `kfd_topology` (which GPU and partition a KFD node is), `enumerate` (the
//! drm class walk, libudev's confirmation), `assemble` (GPUs, partitions and
//! nodes in index order), `discover` (the entry points), `driver` (why an
//! inventory is empty).

mod assemble;
mod discover;
mod driver;
mod enumerate;
mod inventory;
mod kfd_topology;
mod pci_address;
mod sysfs;

pub use discover::{discover, discover_with, scan, Detail, Scan};
pub use driver::{require_gpus, NoGpuError, MODULE_DIR};
pub use enumerate::DiscoveryError;
pub use inventory::{DeviceNode, Gpu, Inventory};
pub use kfd_topology::KfdNode;
pub use pci_address::{PciAddress, PciAddressError};
