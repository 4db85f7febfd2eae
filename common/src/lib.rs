//! Shared core of the AMD container toolkit.
//!
//! Data flows one way: [`hardware`] (what the host has) → [`request`] (what the
//! container asked for) → [`edits`] (the device nodes to give it; [`resolve`]
//! is that pipeline, once) → an applier
//! (the CDI writer in [`cdi`], the live injector and the spec editor in the hook).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod access;
pub mod atomic_file;
pub mod cdi;
pub mod config;
pub mod edits;
pub mod flock;
pub mod hardware;
pub mod request;
pub mod resolve;
#[allow(unsafe_code)]
pub mod sys;
pub mod timestamp;
pub mod tracker;

pub use edits::ContainerEdits;
pub use hardware::{DeviceNode, Gpu, Inventory, PciAddress};
pub use request::{Request, RequestError, Selection};
