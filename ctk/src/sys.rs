//! The system calls amd-ctk makes that nix does not wrap, as safe functions:
//! the inode flags (`FS_IOC_GETFLAGS`), `statx`'s mount-root attribute
//! (through common's `statx`), and restoring SIGPIPE's default disposition.
//!
//! Contract: every `unsafe` block of amd-ctk is here, each with the reason it
//! is sound; the functions only read the descriptor the caller holds (or, for
//! SIGPIPE, change the process's disposition) and report the kernel's answer;
//! a call the filesystem does not support answers `None`, never an error.

use std::os::fd::AsFd;
use std::os::unix::io::AsRawFd;

/// The inode flags of `f` (`FS_IOC_GETFLAGS`, as `lsattr` shows them), or
/// `None` where the filesystem has none.
pub fn inode_flags(f: &impl AsFd) -> Option<libc::c_long> {
    let mut flags: libc::c_long = 0;
    // nix has no FS_IOC_GETFLAGS wrapper (its ioctl macros would hide the same call).
    // SAFETY: FS_IOC_GETFLAGS on the caller's open fd writes one long into
    // `flags`, which outlives the call.
    let r = unsafe { libc::ioctl(f.as_fd().as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
    (r == 0).then_some(flags)
}

/// Is `f` the root of a mount (`STATX_ATTR_MOUNT_ROOT`)? `None` where statx
/// or the attribute is not supported.
pub fn is_mount_root(f: &impl AsFd) -> Option<bool> {
    // nix has no statx; common's is the one wrapper.
    let stx = amd_container_common::sys::statx(f.as_fd().as_raw_fd(), c"", libc::AT_EMPTY_PATH, 0)
        .ok()?;
    let root = libc::STATX_ATTR_MOUNT_ROOT as u64;
    (stx.stx_attributes_mask & root != 0).then_some(stx.stx_attributes & root != 0)
}

/// Restores SIGPIPE's default disposition, so that `amd-ctk cdi list | head`
/// ends quietly, as any Unix filter does. Call it at the start of main,
/// before any other thread exists.
pub fn default_sigpipe() {
    // SAFETY: restores the default disposition (no handler of ours runs); the
    // caller calls it before any other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}
