//! `amd-container-runtime`: a runc-compatible entry for Docker that registers
//! the AMD GPU hook in GPU containers' specs, then execs the low-level runtime
//! (`runtime.low-level-runtime` in the config file, default `runc`).

#[path = "../runtime_shim/mod.rs"]
mod runtime_shim;

// libudev, loaded only when a non-root GPU container's nodes are looked up
// (runtime_shim::user_groups), not at every container start.
#[path = "../lazy_udev.rs"]
mod lazy_udev;

fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let error = runtime_shim::main(&args);
    eprintln!("amd-container-runtime: {error}");
    std::process::ExitCode::FAILURE
}
