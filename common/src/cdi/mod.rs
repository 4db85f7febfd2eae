//! Container Device Interface: our own serde types for the spec, the bounded
//! reader, the minimal-version rule, name checks, the generator and the
//! staleness check. libyaml's event parser, the one `unsafe` here, is
//! wrapped in `ffi`.

#[allow(unsafe_code)]
mod ffi;
mod generate;
mod names;
mod read;
mod spec;
mod stale;
mod version;

pub use generate::{
    generate, hook_entries, GenerateOptions, HookOptions, NameStrategy, HOOK_CDI_FLAG, HOOK_STAGES,
};
pub use names::{validate_device_name, validate_kind, NameError};
pub use read::{parse_document, read_spec, Format, ReadError, MAX_DEPTH};
pub use spec::{CdiContainerEdits, CdiDeviceNode, Device, Hook, Mount, Spec};
pub use stale::{compare_with_hardware, has_our_hook, layout_notes, Discrepancy};
pub use version::minimum_version;

pub const DEFAULT_VENDOR: &str = "amd.com";
pub const DEFAULT_CLASS: &str = "gpu";
