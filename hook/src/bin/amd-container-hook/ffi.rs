//! The C `main` of `amd-container-hook`: the process entry point libc's
//! start-up code calls, in place of the Rust runtime's (see the binary's
//! contract in main.rs for why).
//!
//! Contract: it only hands over to the safe [`super::run`] and returns its
//! exit status; it does not read `argc`/`argv` (std's `env::args` has them).

/// The process entry point, called by libc's start-up code; the arguments
/// are read through `std::env::args`, which glibc hands to std at load time.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    super::run()
}
