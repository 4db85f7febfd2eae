//! The `amd-ctk` subcommands, one module each (`cdi`, `gpu`, `gpu_tracker`,
//! `runtime_configure`, the hidden `package_removal`), and what two of them
//! share: `cdi_render` (a spec as JSON or YAML, our hook in it) and
//! `cdi_state` (the record `cdi generate` keeps for `cdi refresh`).
//!
//! Contract: each command's `run` returns its exit code or one error, which
//! `main` reports (crate::cli_error); imports go one way, from a command to what
//! it shares, never back.

pub mod cdi;
pub mod cdi_refresh;
pub mod cdi_render;
pub mod cdi_state;
pub mod gpu;
pub mod gpu_tracker;
pub mod package_removal;
pub mod runtime_configure;
