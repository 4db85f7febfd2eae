//! The system calls the hook makes that nix does not wrap, as safe functions:
//! the new mount API (`open_tree`, `move_mount`), a mount id (through
//! common's `statx`), and
//! taking ownership of the descriptor nix's `openat` returns as a bare
//! integer. (bpf(2) has its own module, `cgroup::v2::sys`, behind the
//! `BpfSys` trait; `lazy_udev` holds the dlopen of libudev.)
//!
//! Contract: every `unsafe` block of these calls is here, each with the
//! reason it is sound; every function returns the kernel's error as
//! `io::Error` and every descriptor it makes as an `OwnedFd` that closes it
//! exactly once. No path is resolved here except as the caller names it,
//! relative to a descriptor the caller holds.

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Takes ownership of `fd`, just returned by a successful call.
fn adopt(fd: libc::c_long, call: &str) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd)
        .map_err(|_| io::Error::other(format!("{call} returned {fd}, not a descriptor")))?;
    // SAFETY: `fd` was just returned by a successful `call` and nothing else
    // owns it, so the OwnedFd is its only owner and closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(dir, name, flags | O_CLOEXEC, mode)`.
pub fn openat(
    dir: RawFd,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let fd = nix::fcntl::openat(
        Some(dir),
        name,
        OFlag::from_bits_retain(flags) | OFlag::O_CLOEXEC,
        Mode::from_bits_retain(mode),
    )?;
    adopt(fd.into(), "openat")
}

/// `open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | O_CLOEXEC)`: a detached copy
/// of the mount of `path`, to attach in another namespace with [`move_mount`].
pub fn open_tree_clone(path: &CStr) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: open_tree (no libc or nix wrapper) with a NUL-terminated path
    // that outlives the call; it only returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    adopt(fd, "open_tree")
}

/// `move_mount(from, "", to, "", F_EMPTY_PATH | T_EMPTY_PATH)`: attaches
/// the detached mount `from` on the file `to`.
pub fn move_mount(from: BorrowedFd, to: BorrowedFd) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    let empty = c"";
    // SAFETY: move_mount (no libc or nix wrapper) with two open descriptors
    // and NUL-terminated empty paths, which the *_EMPTY_PATH flags make name
    // those descriptors' files; the kernel reads nothing else from us.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            to.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The id of the mount `name` (relative to `dir`, not followed if a
/// symlink; "" for `dir` itself) is on (statx STATX_MNT_ID, Linux 5.8).
pub fn mount_id(dir: RawFd, name: &CStr) -> io::Result<u64> {
    let flags = libc::AT_SYMLINK_NOFOLLOW
        | if name.is_empty() {
            libc::AT_EMPTY_PATH
        } else {
            0
        };
    let stx = amd_container_common::sys::statx(dir, name, flags, libc::STATX_MNT_ID)?;
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel reports no mount id (statx STATX_MNT_ID, Linux 5.8)",
        ));
    }
    Ok(stx.stx_mnt_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openat_and_mount_id_of_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let c = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
        let fd = openat(libc::AT_FDCWD, &c, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        let own = mount_id(fd.as_raw_fd(), c"").unwrap();
        let root = openat(libc::AT_FDCWD, c"/", libc::O_PATH, 0).unwrap();
        // Same id whether asked through the directory or by name from /.
        let by_name =
            std::ffi::CString::new(dir.path().to_str().unwrap().trim_start_matches('/')).unwrap();
        assert_eq!(mount_id(root.as_raw_fd(), &by_name).unwrap(), own);
        let missing = openat(fd.as_raw_fd(), c"nope", libc::O_PATH, 0).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
