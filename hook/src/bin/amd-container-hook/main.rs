//! `amd-container-hook [--config FILE] STAGE`: the OCI hook that gives a
//! container the AMD GPUs its `AMD_VISIBLE_DEVICES` asks for.
//!
//! It runs at every container start on the host, and for nearly all of them
//! it only reads the spec's environment and exits, so it is built to start as
//! cheaply as `/bin/true`: the C `main` (ffi.rs) skips the Rust runtime's
//! start-up (which finds the main thread's stack guard by reading
//! `/proc/self/maps`, installs signal handlers and names the thread), and
//! libudev is not linked but loaded on first use
//! ([`amd_container_hook::lazy_udev`], part of the library). For a GPU
//! container the same process does the work ([`amd_container_hook::stages`]).
//!
//! Contract: the exit status is the stage's (0 done or nothing to do, 1
//! failed with a message on stderr, 2 usage); nothing is left buffered, as
//! the process ends through libc's `exit`, not Rust's runtime.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_code)]
#![cfg_attr(not(test), no_main)]

#[allow(unsafe_code)]
mod ffi;

/// Runs the stage the command line names; the exit status for [`ffi`]'s C
/// `main`.
#[cfg(not(test))]
fn run() -> std::ffi::c_int {
    use amd_container_hook::{stages, Args};
    stages::run(&Args::parse(std::env::args().skip(1))).into()
}
