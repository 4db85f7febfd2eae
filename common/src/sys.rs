//! The raw system calls the toolkit needs that nix does not wrap: extended
//! attributes (`listxattr`, `getxattr`, `fsetxattr`), for the atomic writer
//! to copy a file's ACLs and SELinux label onto its replacement, and
//! `statx`, the one call behind the hook's mount ids and amd-ctk's
//! mount-root check.
//!
//! Contract: the only `unsafe` of the crate besides `cdi::ffi`; every
//! function here is safe to call: it takes Rust strings, buffers and
//! descriptors, and reports failure as the `errno` the call set (a
//! descriptor that is not open is the kernel's `EBADF`).

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, RawFd};

/// Calls a size-then-fill xattr syscall until the buffer is big enough.
fn sized_call(mut call: impl FnMut(*mut u8, usize) -> isize) -> std::io::Result<Vec<u8>> {
    for _ in 0..8 {
        let n = call(std::ptr::null_mut(), 0);
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut buf = vec![0u8; n.unsigned_abs()];
        let m = call(buf.as_mut_ptr(), buf.len());
        if m >= 0 {
            buf.truncate(m.unsigned_abs());
            return Ok(buf);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(e);
        }
    }
    Err(std::io::Error::from_raw_os_error(libc::ERANGE))
}

/// The names of `path`'s extended attributes, each followed by a NUL
/// (`listxattr(2)`).
pub fn xattr_list(path: &CStr) -> std::io::Result<Vec<u8>> {
    // SAFETY: valid C string; the buffer is `len` bytes (or null with 0).
    sized_call(|buf, len| unsafe { libc::listxattr(path.as_ptr(), buf.cast(), len) })
}

/// The value of `path`'s extended attribute `name` (`getxattr(2)`).
pub fn xattr_get(path: &CStr, name: &CStr) -> std::io::Result<Vec<u8>> {
    // SAFETY: valid C strings; the buffer is `len` bytes (or null with 0).
    sized_call(|buf, len| unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), buf.cast(), len) })
}

/// Sets the extended attribute `name` of the open file `file` to `value`
/// (`fsetxattr(2)`, no flags: created or replaced).
pub fn fxattr_set(file: impl AsFd, name: &CStr, value: &[u8]) -> std::io::Result<()> {
    // SAFETY: valid C string, buffer and length; the descriptor is borrowed
    // from `file` for the whole call.
    let r = unsafe {
        libc::fsetxattr(
            file.as_fd().as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `statx(2)` of `name` relative to the directory `dir` (or `AT_FDCWD`),
/// with `flags` (`AT_EMPTY_PATH` and an empty `name` for `dir` itself) and
/// the fields `mask` asks for; the struct as the kernel filled it (its
/// `stx_mask` and `stx_attributes_mask` say what it answered).
pub fn statx(
    dir: RawFd,
    name: &CStr,
    flags: libc::c_int,
    mask: u32,
) -> std::io::Result<libc::statx> {
    // SAFETY: an all-zero statx is a valid value of this plain C struct.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated and `stx` a valid out pointer, both
    // outliving the call; the kernel reads `dir` as a descriptor number
    // (EBADF if it is none) and writes only into `stx`.
    let r = unsafe { libc::statx(dir, name.as_ptr(), flags, mask, &mut stx) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stx)
}
