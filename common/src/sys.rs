//! The raw system calls the crate needs that nix does not wrap: extended
//! attributes (`listxattr`, `getxattr`, `fsetxattr`), for the atomic writer
//! to copy a file's ACLs and SELinux label onto its replacement.
//!
//! Contract: the only `unsafe` of the crate besides `cdi::ffi`; every
//! function here is safe to call: it takes Rust strings, buffers and owned
//! descriptors, and reports failure as the `errno` the call set.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd};

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
