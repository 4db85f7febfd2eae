//! A device program systemd attaches to the container's scope from a bpffs
//! pin: crun 1.2x under the systemd cgroup driver loads its device program,
//! pins it (`/sys/fs/bpf/crun/ID_scope`) and creates the scope with
//! `BPFProgram=device:PIN` (and `DevicePolicy=auto`, no `DeviceAllow`).
//! systemd loads the program from the pin again whenever it re-applies the
//! unit (`systemctl daemon-reload`) and attaches it next to whatever is
//! there, so a grant made only on the cgroup would be ANDed away by the old
//! program coming back. The pin is part of the grant.
//!
//! Contract: [`DevicePin::open`] runs in the host's mount namespace and
//! keeps the pin's directory and the program pinned there; afterwards (in
//! any mount namespace) [`DevicePin::repin`] pins the program that replaced
//! the pinned one in its place — pinned under a temporary name in the same
//! directory (no dot: bpffs refuses those) and renamed over the pin, so the
//! path always names a whole program — and [`Repinned::undo`] pins the old one back the same way.
//! A pin whose program this grant did not replace is left as it is.

use super::sys::{obj_get, obj_pin, Kernel};
use super::BpfSys;
use crate::cgroup::CgroupError;
use nix::fcntl::renameat;
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A pin named by the scope's `BPFProgram=device:PATH`, opened.
pub struct DevicePin {
    pub path: PathBuf,
    dir: OwnedFd,
    name: CString,
    /// The program pinned there when opened, and its id.
    pub pinned: OwnedFd,
    pub pinned_id: u32,
}

/// What [`DevicePin::repin`] changed.
pub struct Repinned<'a> {
    pin: &'a DevicePin,
}

fn pin_error(path: &Path, what: &'static str, source: std::io::Error) -> CgroupError {
    CgroupError::Pin {
        path: path.to_path_buf(),
        what,
        source,
    }
}

impl DevicePin {
    /// Opens the pin at `path` (an absolute path in bpffs). `None` when
    /// nothing is pinned there (systemd then attaches nothing from it).
    pub fn open(path: &Path) -> Result<Option<DevicePin>, CgroupError> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(pin_error(
                path,
                "name",
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            ));
        };
        let name = CString::new(name.as_bytes()).map_err(|e| {
            pin_error(
                path,
                "name",
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            )
        })?;
        let dir: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(parent)
            .map_err(|e| pin_error(path, "open the directory of", e))?
            .into();
        let pinned = match obj_get(dir.as_fd(), &name) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                log::debug!("{}: nothing pinned", path.display());
                return Ok(None);
            }
            Err(e) => return Err(pin_error(path, "BPF_OBJ_GET", e)),
        };
        let pinned_id = Kernel::default()
            .prog_id(&pinned)
            .map_err(|e| pin_error(path, "read the program id of", e))?;
        Ok(Some(DevicePin {
            path: path.to_path_buf(),
            dir,
            name,
            pinned,
            pinned_id,
        }))
    }

    /// Pins `prog` in place of what is pinned (temporary name, then rename).
    fn pin_in_place(&self, prog: BorrowedFd) -> Result<(), CgroupError> {
        let tmp = CString::new(
            // bpffs refuses names with a dot (reserved for the kernel's own files).
            [
                self.name.as_bytes(),
                b"_amd_ctk_",
                std::process::id().to_string().as_bytes(),
            ]
            .concat(),
        )
        .map_err(|e| {
            pin_error(
                &self.path,
                "name",
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            )
        })?;
        obj_pin(prog, self.dir.as_fd(), &tmp)
            .map_err(|e| pin_error(&self.path, "BPF_OBJ_PIN next to", e))?;
        if let Err(e) = renameat(
            Some(self.dir.as_fd().as_raw_fd()),
            tmp.as_c_str(),
            Some(self.dir.as_fd().as_raw_fd()),
            self.name.as_c_str(),
        ) {
            let _ = unlinkat(
                Some(self.dir.as_fd().as_raw_fd()),
                tmp.as_c_str(),
                UnlinkatFlags::NoRemoveDir,
            );
            return Err(pin_error(&self.path, "rename a new pin over", e.into()));
        }
        Ok(())
    }

    /// Pins `new` (id `new_id`, the program that replaced the pinned one on
    /// the scope's cgroup) in place of the pinned program.
    pub fn repin(&self, new: BorrowedFd, new_id: u32) -> Result<Repinned<'_>, CgroupError> {
        self.pin_in_place(new)?;
        log::debug!(
            "{}: program {new_id} pinned in place of program {} (systemd attaches it when it \
             re-applies the scope)",
            self.path.display(),
            self.pinned_id
        );
        Ok(Repinned { pin: self })
    }
}

impl Repinned<'_> {
    /// Pins the old program back.
    pub fn undo(self) -> Result<(), CgroupError> {
        self.pin.pin_in_place(self.pin.pinned.as_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::program::{from_rules, Rule};

    /// Needs root (bpffs mount, BPF_PROG_LOAD): skipped without it, a
    /// failure under CI=true.
    #[test]
    fn repin_replaces_the_pinned_program_and_undo_puts_it_back() {
        if !nix::unistd::geteuid().is_root() {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "needs root under CI"
            );
            eprintln!("SKIPPED: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        nix::mount::mount(
            Some("bpf"),
            dir.path(),
            Some("bpf"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        struct Unmount<'a>(&'a Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = nix::mount::umount(self.0);
            }
        }
        let _unmount = Unmount(dir.path());
        let load = |minor| {
            let insns = from_rules(&[Rule::allow_char(226, minor)]).unwrap();
            let prog = Kernel::default().prog_load(&insns, "pin_test").unwrap();
            let id = Kernel::default().prog_id(&prog).unwrap();
            (prog, id)
        };
        let ((old, old_id), (new, new_id)) = (load(1), load(2));
        let dirfd: OwnedFd = std::fs::File::open(dir.path()).unwrap().into();
        let pinned_id = |name: &std::ffi::CStr| {
            let fd = obj_get(dirfd.as_fd(), name).unwrap();
            Kernel::default().prog_id(&fd).unwrap()
        };
        obj_pin(old.as_fd(), dirfd.as_fd(), c"ctr_scope").unwrap();
        // The fact the temporary name rests on: bpffs refuses dots.
        assert!(obj_pin(old.as_fd(), dirfd.as_fd(), c"ctr.tmp").is_err());

        let none = DevicePin::open(&dir.path().join("absent")).unwrap();
        assert!(none.is_none(), "nothing pinned: no pin to keep");
        let pin = DevicePin::open(&dir.path().join("ctr_scope"))
            .unwrap()
            .unwrap();
        assert_eq!(pin.pinned_id, old_id);
        let r = pin.repin(new.as_fd(), new_id).unwrap();
        assert_eq!(pinned_id(c"ctr_scope"), new_id, "the replacement is pinned");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| !n.as_bytes().contains(&b'.')) // the kernel's own progs.debug, …
            .collect();
        assert_eq!(names, ["ctr_scope"], "no temporary pin is left");
        r.undo().unwrap();
        assert_eq!(
            pinned_id(c"ctr_scope"),
            old_id,
            "undo pins the old program back"
        );
    }
}
