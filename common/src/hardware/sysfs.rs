//! Sysfs reads for discovery: attributes in one read(2) each ([`read_attr`]),
//! class entries resolved to device directories ([`class_syspath`]), and a
//! device's node from its own `uevent` (`MAJOR`, `MINOR`, `DEVNAME`: what
//! libudev reads for them; [`device_node`]).
//!
//! Contract: reads only; a node whose `uevent` is unreadable or incomplete
//! is `None` with a warning, never an error; a node's path never leaves
//! `/dev`, nor a device directory `/sys/devices`.

use super::inventory::DeviceNode;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub(super) const DRM_CLASS: &str = "/sys/class/drm";
pub(super) const KFD_CLASS: &str = "/sys/class/kfd";

/// The device directory a class entry (`/sys/class/drm/card1`, a symlink
/// to `../../devices/…/drm/card1`) stands for: the link target resolved
/// against the class directory. `None` when the entry is not such a link.
pub(super) fn class_syspath(class: &str, name: &str) -> Option<PathBuf> {
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

/// A device node from its device directory's `uevent`, as libudev gives
/// devnode and devnum (`DEVNAME` under `/dev`, `MAJOR`, `MINOR`), with mode
/// and owner from the host file. `name` is for messages.
pub(super) fn device_node(syspath: &Path, name: &str) -> Option<DeviceNode> {
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
pub(super) fn kfd_dir(kfd_class: Option<&Path>) -> Option<PathBuf> {
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
pub(super) fn read_attr(path: &Path) -> std::io::Result<String> {
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
