//! Which GPUs and partitions the host has, before any is numbered: the drm
//! class directory is listed, each entry's link names the node's parent, and
//! each parent is classified once from its sysfs directory ([`drm_parents`]);
//! libudev then confirms the GPUs ([`confirm_with_udev`]).
//!
//! Contract: a GPU is an amdgpu PCI device as libudev reports it (a libudev
//! device per GPU: subsystem `pci`, driver `amdgpu`, its PCI address from its
//! sysname); a parent whose driver link is not amdgpu's costs no libudev
//! device, and libudev is loaded only once a host has an amdgpu device,
//! opened by resolved sysfs path through one context (libudev then walks
//! that path once, instead of probing the bus and class directories).
//! Compute partitions (`amdgpu_xcp` platform devices) are kept by name for
//! [`super::assemble`], which places them. No node's `uevent` is read here.

use super::pci_address::PciAddress;
use super::sysfs::{class_syspath, read_attr, DRM_CLASS};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const AMDGPU_DRIVER: &str = "amdgpu";

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("libudev enumeration failed: {0}")]
    Udev(#[from] std::io::Error),
}

/// A drm node as sysfs shows it: its device directory and minor.
#[derive(Debug, Clone)]
pub(super) struct Found {
    pub(super) name: String,
    pub(super) syspath: PathBuf,
    /// From the name (`renderD128`: the kernel names nodes by minor); it
    /// orders partitions and finds their KFD node.
    pub(super) minor: u32,
}

/// The drm nodes that hang under one parent device.
#[derive(Default, Debug, Clone)]
pub(super) struct DrmPair {
    pub(super) card: Option<Found>,
    pub(super) render: Option<Found>,
}

impl DrmPair {
    pub(super) fn render_minor(&self) -> Option<u32> {
        self.render.as_ref().map(|n| n.minor)
    }
}

/// A physical amdgpu PCI device as seen before partitions are attached.
#[derive(Debug, Clone)]
pub(super) struct PciGpu {
    pub(super) address: PciAddress,
    pub(super) syspath: PathBuf,
    pub(super) nodes: DrmPair,
    pub(super) compute_partition: Option<String>,
    pub(super) memory_partition: Option<String>,
}

/// The parents of the host's drm nodes that matter, each with its nodes.
pub(super) struct DrmParents {
    /// amdgpu PCI devices by syspath, not yet confirmed by libudev.
    pub(super) candidates: BTreeMap<PathBuf, PciGpu>,
    /// Compute partition devices by name.
    pub(super) partitions: BTreeMap<String, DrmPair>,
}

/// Walks the drm class directory and sorts each node under its parent.
/// `partition_modes`: read `current_compute_partition` /
/// `current_memory_partition` of each GPU.
pub(super) fn drm_parents(partition_modes: bool) -> Result<DrmParents, DiscoveryError> {
    let mut candidates: BTreeMap<PathBuf, PciGpu> = BTreeMap::new();
    let mut partitions: BTreeMap<String, DrmPair> = BTreeMap::new();

    // Several nodes share a parent: classify each parent once.
    let mut owners: HashMap<PathBuf, Owner> = HashMap::new();
    for (name, kind, minor) in drm_minors()? {
        let Some(syspath) = class_syspath(DRM_CLASS, &name) else {
            log::warn!("drm device {name}: not a link into /sys/devices; skipped");
            continue;
        };
        let Some(parent_path) = parent_syspath(&syspath) else {
            continue;
        };
        let owner = owners
            .entry(parent_path)
            .or_insert_with_key(|path| classify_parent(path, partition_modes));
        let slot = match owner {
            Owner::Gpu(gpu) => {
                &mut candidates
                    .entry(gpu.syspath.clone())
                    .or_insert_with(|| gpu.clone())
                    .nodes
            }
            Owner::Partition(name) => partitions.entry(name.clone()).or_default(),
            Owner::Other => continue,
        };
        let found = Some(Found {
            name,
            syspath,
            minor,
        });
        match kind {
            DrmKind::Card => slot.card = found,
            DrmKind::Render => slot.render = found,
        }
    }
    Ok(DrmParents {
        candidates,
        partitions,
    })
}

/// libudev decides which of the amdgpu parents sysfs pointed at are GPUs:
/// one libudev device each, by its resolved sysfs path; a GPU is one that
/// libudev reports as a PCI device driven by amdgpu, at the PCI address of
/// its sysname. A host without candidates does not load libudev.
pub(super) fn confirm_with_udev(
    candidates: BTreeMap<PathBuf, PciGpu>,
) -> Result<Vec<PciGpu>, DiscoveryError> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let udev = udev::Udev::new()?;
    let mut gpus = Vec::with_capacity(candidates.len());
    for (syspath, mut gpu) in candidates {
        let dev = match udev::Device::from_syspath_with_context(udev.clone(), &syspath) {
            Ok(dev) => dev,
            Err(e) => {
                log::warn!("amdgpu device {}: libudev: {e}; skipped", syspath.display());
                continue;
            }
        };
        let subsystem = dev.subsystem().and_then(|s| s.to_str());
        let driver = dev.driver().and_then(|s| s.to_str());
        if subsystem != Some("pci") || driver != Some(AMDGPU_DRIVER) {
            log::warn!(
                "{}: libudev reports subsystem {}, driver {}, not an amdgpu PCI device; skipped",
                syspath.display(),
                subsystem.unwrap_or("none"),
                driver.unwrap_or("none")
            );
            continue;
        }
        match dev.sysname().to_string_lossy().parse::<PciAddress>() {
            Ok(address) => {
                gpu.address = address;
                gpus.push(gpu);
            }
            Err(e) => log::warn!("amdgpu device {}: {e}; skipped", syspath.display()),
        }
    }
    Ok(gpus)
}

/// amdgpu PCI devices without drm nodes are unusable, but worth a word. The
/// driver's sysfs directory lists its devices: one readdir instead of a udev
/// scan of every PCI device on the host.
pub(super) fn warn_about_gpus_without_drm(found: &[PciGpu]) {
    let Ok(entries) = std::fs::read_dir("/sys/bus/pci/drivers/amdgpu") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Ok(address) = name.parse::<PciAddress>() {
            if !found.iter().any(|g| g.address == address) {
                log::warn!("amdgpu device {address} has no drm nodes; skipped");
            }
        }
    }
}

/// The drm minors (`cardN`, `renderDN`) by name, sorted. The class
/// directory is listed here rather than by libudev's enumerator, which also
/// resolves every ancestor of every match, path component by component.
fn drm_minors() -> Result<Vec<(String, DrmKind, u32)>, DiscoveryError> {
    let entries = match std::fs::read_dir(DRM_CLASS) {
        Ok(e) => e,
        // No drm class: no GPU driver at all.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut names: Vec<(String, DrmKind, u32)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (kind, minor) = drm_kind(&name)?;
            Some((name, kind, minor))
        })
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(names)
}

/// `PREFIX` followed by decimal digits only.
fn numbered(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// What a drm node's parent device is.
enum Owner {
    Gpu(PciGpu),
    Partition(String),
    Other,
}

/// The parent's syspath: drm nodes sit in `<parent>/drm/<name>`.
fn parent_syspath(syspath: &Path) -> Option<PathBuf> {
    let drm_dir = syspath.parent()?;
    if drm_dir.file_name().is_some_and(|n| n == "drm") {
        return drm_dir.parent().map(Path::to_path_buf);
    }
    log::warn!("{}: not below a drm directory; skipped", syspath.display());
    None
}

/// Classifies a drm node's parent from its sysfs directory: the files libudev
/// would read (subsystem and driver links, attributes), without building a
/// device object per parent, which costs a path walk each.
fn classify_parent(path: &Path, partition_modes: bool) -> Owner {
    let link = |name: &str| {
        std::fs::read_link(path.join(name))
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
    };
    let attr = |name: &str| {
        read_attr(&path.join(name))
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A partition's platform device has no driver: one readlink each.
    if is_partition_name(&name) {
        return match link("subsystem").as_deref() {
            Some("platform") => Owner::Partition(name),
            _ => Owner::Other,
        };
    }
    // amdgpu binds AMD PCI functions only, so its driver link and a PCI
    // address for a name say it all: one readlink per GPU.
    if link("driver").as_deref() == Some(AMDGPU_DRIVER) {
        return match name.parse::<PciAddress>() {
            Ok(address) => {
                let mode = |name| {
                    if partition_modes {
                        attr(name)
                    } else {
                        None
                    }
                };
                Owner::Gpu(PciGpu {
                    address,
                    syspath: path.to_path_buf(),
                    nodes: DrmPair::default(),
                    compute_partition: mode("current_compute_partition"),
                    memory_partition: mode("current_memory_partition"),
                })
            }
            Err(e) => {
                log::warn!("amdgpu device {}: {e}; skipped", path.display());
                Owner::Other
            }
        };
    }
    Owner::Other
}

enum DrmKind {
    Card,
    Render,
}

/// `cardN` or `renderDN`, and N.
fn drm_kind(name: &str) -> Option<(DrmKind, u32)> {
    let number = |prefix| {
        name.strip_prefix(prefix)
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
    };
    if let Some(n) = number("renderD") {
        Some((DrmKind::Render, n))
    } else {
        number("card").map(|n| (DrmKind::Card, n))
    }
}

/// `amdgpu_xcp.N` on mainline kernels, `amdgpu_xcp_N` on some DKMS builds.
fn is_partition_name(name: &str) -> bool {
    numbered(name, "amdgpu_xcp.") || numbered(name, "amdgpu_xcp_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drm_names_give_kind_and_minor() {
        assert!(matches!(drm_kind("card1"), Some((DrmKind::Card, 1))));
        assert!(matches!(
            drm_kind("renderD575"),
            Some((DrmKind::Render, 575))
        ));
        assert!(drm_kind("card1-DP-1").is_none());
        assert!(drm_kind("renderD").is_none());
        assert!(drm_kind("controlD64").is_none());
    }
}
