//! Discovery: libudev says which GPUs exist, sysfs gives their nodes.
//!
//! Contract: a GPU is an amdgpu PCI device as libudev reports it (a libudev
//! device per GPU: subsystem `pci`, driver `amdgpu`, its PCI address from its
//! sysname; [`scan`]), found from the drm class directory (each entry's link
//! names the node's parent; a parent whose driver link is not amdgpu's costs
//! no libudev device). Compute partitions (`amdgpu_xcp` platform devices) are
//! parts of a GPU already found: the KFD topology places them by their render
//! node. Each node's numbers and name (card, render, `/dev/kfd`) come from its
//! own sysfs `uevent` (`MAJOR`, `MINOR`, `DEVNAME`: what libudev reads for
//! them), read only for the GPUs a caller asks for ([`Scan::with_nodes`];
//! [`discover`] asks for all), with one read(2) per file ([`read_attr`]).
//! This runs in the hook at every GPU container start: libudev is loaded
//! only once a host has an amdgpu device, opened by resolved sysfs path
//! through one context (libudev then walks that path once, instead of
//! probing the bus and class directories), and GPUs of other drivers and
//! nodes of GPUs a container does not get cost nothing more.

use super::kfd_topology::{place, read_topology, KfdNode};
use super::{DeviceNode, Gpu, Inventory, PciAddress};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const AMDGPU_DRIVER: &str = "amdgpu";

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("libudev enumeration failed: {0}")]
    Udev(#[from] std::io::Error),
}

/// A drm node as sysfs shows it: its device directory and minor.
#[derive(Debug, Clone)]
struct Found {
    name: String,
    syspath: PathBuf,
    /// From the name (`renderD128`: the kernel names nodes by minor); it
    /// orders partitions and finds their KFD node.
    minor: u32,
}

/// The drm nodes that hang under one parent device.
#[derive(Default, Debug, Clone)]
struct DrmPair {
    card: Option<Found>,
    render: Option<Found>,
}

impl DrmPair {
    fn render_minor(&self) -> Option<u32> {
        self.render.as_ref().map(|n| n.minor)
    }
}

/// A physical amdgpu PCI device as seen before partitions are attached.
#[derive(Debug, Clone)]
struct PciGpu {
    address: PciAddress,
    syspath: PathBuf,
    nodes: DrmPair,
    compute_partition: Option<String>,
    memory_partition: Option<String>,
}

/// What a caller needs besides the GPUs, their nodes and the index order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detail {
    /// KFD unique ids ([`Gpu::unique_id`]; without them `None`, and unusable
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
    let scan = scan(detail)?;
    let all: Vec<usize> = (0..scan.gpus.gpus.len()).collect();
    scan.with_nodes(&all)
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
            .or_insert_with_key(|path| classify_parent(path, detail));
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

/// libudev decides which of the amdgpu parents sysfs pointed at are GPUs:
/// one libudev device each, by its resolved sysfs path; a GPU is one that
/// libudev reports as a PCI device driven by amdgpu, at the PCI address of
/// its sysname. A host without candidates does not load libudev.
fn confirm_with_udev(candidates: BTreeMap<PathBuf, PciGpu>) -> Result<Vec<PciGpu>, DiscoveryError> {
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
/// Puts GPUs and partitions in the documented order and numbers them: one
/// entry per KFD GPU node, by PCI address with the partition as the KFD
/// `location_id` encodes it ([`place`]; rocm-smi's and amd-smi's order), then
/// by render minor. A partition device is placed on its GPU by its KFD node
/// only (sysfs does not link it to the PCI device); one without a KFD node is
/// inactive (a GPU in SPX keeps its xcp devices).
fn assemble(
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

/// amdgpu PCI devices without drm nodes are unusable, but worth a word. The
/// driver's sysfs directory lists its devices: one readdir instead of a udev
/// scan of every PCI device on the host.
fn warn_about_gpus_without_drm(found: &[PciGpu]) {
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

const DRM_CLASS: &str = "/sys/class/drm";
const KFD_CLASS: &str = "/sys/class/kfd";

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

/// The device directory a class entry (`/sys/class/drm/card1`, a symlink
/// to `../../devices/…/drm/card1`) stands for: the link target resolved
/// against the class directory. `None` when the entry is not such a link.
fn class_syspath(class: &str, name: &str) -> Option<PathBuf> {
    let target = std::fs::read_link(format!("{class}/{name}")).ok()?;
    resolve_link(class, target.to_str()?).map(PathBuf::from)
}

/// `target`, a link in directory `dir`, resolved lexically (sysfs links
/// name device directories, never other links); only a path below
/// `/sys/devices/` is a device's.
fn resolve_link(dir: &str, target: &str) -> Option<String> {
    let mut path = if target.starts_with('/') {
        String::new()
    } else {
        dir.to_string()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => path.truncate(path.rfind('/').unwrap_or(0)),
            part => {
                path.push('/');
                path.push_str(part);
            }
        }
    }
    path.starts_with("/sys/devices/").then_some(path)
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
fn classify_parent(path: &Path, detail: Detail) -> Owner {
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
                    if detail.partition_modes {
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

/// A device node from its device directory's `uevent`, as libudev gives
/// devnode and devnum (`DEVNAME` under `/dev`, `MAJOR`, `MINOR`), with mode
/// and owner from the host file. `name` is for messages.
fn device_node(syspath: &Path, name: &str) -> Option<DeviceNode> {
    let uevent = syspath.join("uevent");
    let text = match read_attr(&uevent) {
        Ok(text) => text,
        Err(e) => {
            log::warn!("{name}: {}: {e}; skipped", uevent.display());
            return None;
        }
    };
    let keys = Uevent::parse(&text);
    let path = keys.devname.and_then(devnode_path)?;
    let (Some(major), Some(minor)) = (keys.major, keys.minor) else {
        log::warn!(
            "{}: {} has no device number; skipped",
            path.display(),
            uevent.display()
        );
        return None;
    };
    let (mode, uid, gid) = match std::fs::metadata(&path) {
        Ok(meta) => (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        Err(e) => {
            log::warn!("{}: {e}; assuming mode 0666 root:root", path.display());
            (0o666, 0, 0)
        }
    };
    Some(DeviceNode {
        path,
        major,
        minor,
        mode,
        uid,
        gid,
    })
}

/// The keys of a device's `uevent` that name its node.
#[derive(Debug, Default, PartialEq, Eq)]
struct Uevent<'a> {
    devname: Option<&'a str>,
    major: Option<u32>,
    minor: Option<u32>,
}

impl<'a> Uevent<'a> {
    /// `KEY=value` lines; other keys and malformed lines are ignored.
    fn parse(text: &'a str) -> Self {
        let mut keys = Uevent::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("DEVNAME", v)) => keys.devname = Some(v),
                Some(("MAJOR", v)) => keys.major = v.parse().ok(),
                Some(("MINOR", v)) => keys.minor = v.parse().ok(),
                _ => {}
            }
        }
        keys
    }
}

/// The node's path, as libudev makes it from `DEVNAME`: below `/dev`
/// (`dri/card1`, or already `/dev/dri/card1`); `None` for an empty name or
/// one that would leave `/dev`.
fn devnode_path(devname: &str) -> Option<PathBuf> {
    let rel = devname.strip_prefix("/dev/").unwrap_or(devname);
    let plain = !rel.is_empty() && rel.split('/').all(|c| !matches!(c, "" | "." | ".."));
    plain.then(|| Path::new("/dev").join(rel))
}

/// The sysfs directory of the kfd device: its class entry resolved
/// (`kfd_class`), or the class entry itself (some kernels expose the
/// topology without a device libudev accepts); `None` on a host without
/// amdgpu.
fn kfd_dir(kfd_class: Option<&Path>) -> Option<PathBuf> {
    kfd_class.map(Path::to_path_buf).or_else(|| {
        let entry = Path::new(KFD_CLASS).join("kfd");
        entry.exists().then_some(entry)
    })
}

/// A sysfs attribute's contents: open, one read, close. Sysfs renders an
/// attribute in one go (at most a page) and regular files return what is
/// left, so a read that does not fill the buffer has reached the end; only
/// a full one is followed by more reads. (`fs::read_to_string` also stats the
/// file and reads once more to see the end: five syscalls instead of three.)
/// The read buffer is zeroed once per thread, not per file (discovery reads
/// one file per node).
pub(crate) fn read_attr(path: &Path) -> std::io::Result<String> {
    const CHUNK: usize = 4096;
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; CHUNK]);
    }
    let mut file = std::fs::File::open(path)?;
    BUF.with_borrow_mut(|buf| {
        let mut len = 0;
        loop {
            let n = file.read(&mut buf[len..])?;
            len += n;
            if n == 0 || len < buf.len() {
                break;
            }
            buf.resize(buf.len() + CHUNK, 0);
        }
        String::from_utf8(buf[..len].to_vec())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// What the kernel writes (`DEVNAME=dri/card1`) and what umockdev
    /// records (`/dev/dri/card1`) give the same node.
    #[test]
    fn uevent_names_the_node() {
        let kernel = "MAJOR=226\nMINOR=1\nDEVNAME=dri/card1\nDEVTYPE=drm_minor\n";
        let keys = Uevent::parse(kernel);
        assert_eq!(
            keys,
            Uevent {
                devname: Some("dri/card1"),
                major: Some(226),
                minor: Some(1)
            }
        );
        assert_eq!(devnode_path("dri/card1"), Some("/dev/dri/card1".into()));
        assert_eq!(
            devnode_path("/dev/dri/card1"),
            Some("/dev/dri/card1".into())
        );
        assert_eq!(devnode_path("kfd"), Some("/dev/kfd".into()));
        let none = Uevent::parse("DRIVER=amdgpu\nMAJOR=x\n");
        assert_eq!((none.devname, none.major, none.minor), (None, None, None));
    }

    #[test]
    fn devname_never_leaves_dev() {
        for bad in [
            "",
            "/dev/",
            "../etc/passwd",
            "dri/../../etc",
            "dri//card1",
            "./kfd",
        ] {
            assert_eq!(devnode_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn class_links_resolve_below_sys_devices() {
        let drm = "/sys/class/drm";
        assert_eq!(
            resolve_link(
                drm,
                "../../devices/pci0000:00/0000:00:01.1/0000:05:00.0/drm/card1"
            )
            .as_deref(),
            Some("/sys/devices/pci0000:00/0000:00:01.1/0000:05:00.0/drm/card1")
        );
        assert_eq!(
            resolve_link(drm, "../../devices/platform/./amdgpu_xcp.0/drm/renderD129").as_deref(),
            Some("/sys/devices/platform/amdgpu_xcp.0/drm/renderD129")
        );
        assert_eq!(resolve_link(drm, "../../devicesX/card1"), None);
        assert_eq!(resolve_link(drm, "../../../../../etc/card1"), None);
        assert_eq!(
            resolve_link(drm, "/sys/devices/virtual/drm/card0").as_deref(),
            Some("/sys/devices/virtual/drm/card0")
        );
    }
}
