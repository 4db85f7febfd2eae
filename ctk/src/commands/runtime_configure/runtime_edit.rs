//! The runtime entry `amd` a Docker or containerd edit adds, changes or
//! removes ([`RuntimeEdit`]): the binary it names, what happens to the
//! default runtime and to the engine's CDI switch, and whether an existing
//! entry `amd` is ours.
//!
//! Contract: plain data from the command line; nothing here reads or writes
//! a file.

use std::path::Path;

/// The name of our runtime in Docker's and containerd's configuration.
pub const RUNTIME_NAME: &str = "amd";
pub const DEFAULT_RUNTIME_PATH: &str = "amd-container-runtime";

/// What to do with the engine's default runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultRuntime {
    Keep,
    Set,
    /// Drop it, but only where it is ours.
    Unset,
}

/// What a Docker or containerd edit does with the engine's CDI switch
/// (Docker's `features.cdi`, containerd's `enable_cdi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CdiSetting {
    /// `--no-cdi`, and containerd without `--cdi`: not touched.
    Leave,
    /// Docker without a flag: turned on where it is not set; an admin's
    /// `false` is kept (and said so). `--remove` takes back only ours.
    Default,
    /// `--cdi`: turned on, an admin's `false` included (the record keeps it
    /// for `--remove`).
    On,
}

/// The runtime entry a Docker or containerd edit adds, changes or removes.
#[derive(Debug, Clone)]
pub struct RuntimeEdit<'a> {
    /// The binary the engine runs: `runtimes.amd.path` (Docker),
    /// `options.BinaryName` of the `amd` runtime (containerd).
    pub runtime_path: &'a str,
    pub default: DefaultRuntime,
    pub cdi: CdiSetting,
    pub remove: bool,
}

impl RuntimeEdit<'_> {
    /// Is `binary`, the program of an engine's runtime entry named `amd`,
    /// ours: the one this edit writes, or any `amd-container-runtime`
    /// (another directory, an earlier `--runtime-path`)? Anything else is
    /// someone else's runtime that happens to be called `amd`.
    pub fn is_ours(&self, binary: &str) -> bool {
        binary == self.runtime_path
            || Path::new(binary).file_name() == Some(std::ffi::OsStr::new(DEFAULT_RUNTIME_PATH))
    }
}

/// The hint of a refusal to replace a runtime `amd` that is not ours.
pub const NOT_OURS_HINT: &str = "Rename or remove that runtime to register ours; if it is      amd-container-runtime under another name, name it with --runtime-path.";

/// The plain edit of the table tests, and one with a change applied.
#[cfg(test)]
pub(crate) mod test_edit {
    use super::{CdiSetting, DefaultRuntime, RuntimeEdit};

    /// `--no-cdi`: CDI left alone (the tables test it separately).
    pub fn edit() -> RuntimeEdit<'static> {
        RuntimeEdit {
            runtime_path: "amd-container-runtime",
            default: DefaultRuntime::Keep,
            cdi: CdiSetting::Leave,
            remove: false,
        }
    }

    pub fn with(f: impl FnOnce(&mut RuntimeEdit<'static>)) -> RuntimeEdit<'static> {
        let mut e = edit();
        f(&mut e);
        e
    }
}
