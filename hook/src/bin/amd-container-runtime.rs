//! `amd-container-runtime`: a runc-compatible entry for Docker that registers
//! the AMD GPU hook in GPU containers' specs, then execs the low-level runtime
//! (`runtime.low-level-runtime` in the config file, default `runc`).
//!
//! A thin `main` over [`amd_container_hook::runtime_shim`]; libudev comes
//! from the library's `lazy_udev` and is loaded only when a non-root GPU
//! container's nodes are looked up, not at every container start.
//!
//! Contract: returns only on failure, after printing the error once on
//! stderr (exit status 1); success replaces the process with the runtime.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_code)]

fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let error = amd_container_hook::runtime_shim::main(&args);
    eprintln!("amd-container-runtime: {error}");
    std::process::ExitCode::FAILURE
}
