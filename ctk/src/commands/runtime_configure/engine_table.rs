//! The engines `runtime configure --runtime` knows, as data: one row of
//! [`ENGINES`] per engine (its name, the flags it refuses and why, its CDI
//! default, its lines of the `Files:` help, its constructor). clap's value
//! list (`[possible values: …]`), the flag checks, the help and the dispatch
//! are all read from the table.
//!
//! Contract: adding an engine is one row here and one module with its
//! `build` and its [`Engine`]; nothing else names the engines one by one.
//! The rows' order is the order of `--runtime`'s possible values.

use super::engine::{Engine, Settings};
use super::error::ConfigureError;
use super::runtime_edit::CdiSetting;
use super::{containerd, crio, docker, podman};
use clap::builder::PossibleValue;

/// Builds an engine from the checked command line.
pub type Build = for<'a> fn(&'a Settings<'a>) -> Result<Box<dyn Engine + 'a>, ConfigureError>;

/// How an engine is registered; the `Files:` help lists the engines with a
/// runtime entry first, then those with a hooks directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Registration {
    /// A runtime `amd` in the engine's configuration file.
    RuntimeEntry,
    /// Our hooks JSON in an OCI hooks directory.
    HooksDir,
}

/// One engine of `--runtime`.
#[derive(Debug, Clone, Copy)]
pub struct EngineDef {
    /// Its `--runtime` value.
    pub name: &'static str,
    pub registration: Registration,
    /// The flags that mean nothing for it, with the reason given.
    pub refuses: &'static [(Flag, &'static str)],
    /// What it does with the CDI switch without `--cdi` or `--no-cdi`.
    pub cdi_default: CdiSetting,
    /// Its lines of the `Files:` help (each ending in a newline).
    pub files_help: &'static str,
    pub build: Build,
}

/// The options some engines refuse, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    SetAsDefault,
    UnsetAsDefault,
    Cdi,
    NoCdi,
    RuntimePath,
    HooksDir,
    HookPath,
    Precreate,
    Config,
}

impl Flag {
    pub const ALL: [Flag; 9] = [
        Flag::SetAsDefault,
        Flag::UnsetAsDefault,
        Flag::Cdi,
        Flag::NoCdi,
        Flag::RuntimePath,
        Flag::HooksDir,
        Flag::HookPath,
        Flag::Precreate,
        Flag::Config,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Flag::SetAsDefault => "--set-as-default",
            Flag::UnsetAsDefault => "--unset-as-default",
            Flag::Cdi => "--cdi",
            Flag::NoCdi => "--no-cdi",
            Flag::RuntimePath => "--runtime-path",
            Flag::HooksDir => "--hooks-dir",
            Flag::HookPath => "--hook-path",
            Flag::Precreate => "--precreate",
            Flag::Config => "--config",
        }
    }
}

const NO_RUNTIME_TO_CHOOSE: &str =
    "the hook runs for every container, there is no runtime to choose";
const READS_CDI_ALONE: &str =
    "Podman and CRI-O read CDI specs (amd-ctk cdi generate) without configuration";
const NO_RUNTIME_ENTRY: &str = "it names the Docker/containerd runtime entry; use --hook-path";
const HOOKS_DIR_ONLY: &str = "it is for podman and crio";
const HOOK_PATH_FROM_CONFIG: &str =
    "the hook path comes from runtime.hook-path in /etc/amd-container-toolkit/config.toml";
const NO_PRECREATE: &str = "only Podman has a precreate stage";

/// What an engine with a runtime entry refuses.
const RUNTIME_ENTRY_REFUSES: &[(Flag, &str)] = &[
    (Flag::HooksDir, HOOKS_DIR_ONLY),
    (Flag::HookPath, HOOK_PATH_FROM_CONFIG),
    (Flag::Precreate, NO_PRECREATE),
];

pub static ENGINES: &[EngineDef] = &[
    EngineDef {
        name: "docker",
        registration: Registration::RuntimeEntry,
        refuses: RUNTIME_ENTRY_REFUSES,
        cdi_default: CdiSetting::Default,
        files_help: "  docker      /etc/docker/daemon.json (--config): runtimes.amd, default-runtime, features.cdi
              (on unless --no-cdi; which daemon.json files amd-ctk turned it on in is recorded
              in /var/lib/amd-container-toolkit/docker-cdi.json, so --remove takes back only those)
",
        build: docker::build,
    },
    EngineDef {
        name: "podman",
        registration: Registration::HooksDir,
        refuses: &[
            (Flag::SetAsDefault, NO_RUNTIME_TO_CHOOSE),
            (Flag::UnsetAsDefault, NO_RUNTIME_TO_CHOOSE),
            (Flag::Cdi, READS_CDI_ALONE),
            (Flag::NoCdi, READS_CDI_ALONE),
            (Flag::RuntimePath, NO_RUNTIME_ENTRY),
            (
                Flag::Config,
                "podman needs only the hooks directory (--hooks-dir)",
            ),
        ],
        cdi_default: CdiSetting::Leave,
        files_help: "  podman      DIR/amd-container-toolkit.json, or with --precreate amd-container-toolkit-precreate.json
",
        build: podman::build,
    },
    EngineDef {
        name: "crio",
        registration: Registration::HooksDir,
        refuses: &[
            (Flag::SetAsDefault, NO_RUNTIME_TO_CHOOSE),
            (Flag::UnsetAsDefault, NO_RUNTIME_TO_CHOOSE),
            (Flag::Cdi, READS_CDI_ALONE),
            (Flag::NoCdi, READS_CDI_ALONE),
            (Flag::RuntimePath, NO_RUNTIME_ENTRY),
            (Flag::Precreate, NO_PRECREATE),
        ],
        cdi_default: CdiSetting::Leave,
        files_help: "  crio        DIR/amd-container-toolkit.json; with a --hooks-dir other than the default, also the
              drop-in /etc/crio/crio.conf.d/99-amd-container-toolkit.conf (--config); a --config
              file amd-ctk did not write (crio.conf) gets DIR in its hooks_dir instead
",
        build: crio::build,
    },
    EngineDef {
        name: "containerd",
        registration: Registration::RuntimeEntry,
        refuses: RUNTIME_ENTRY_REFUSES,
        cdi_default: CdiSetting::Leave,
        files_help: "  containerd  /etc/containerd/config.toml (--config), config version 1, 2 or 3 (a new file: 2)
",
        build: containerd::build,
    },
];

impl EngineDef {
    /// Why `flag` means nothing for this engine, if it does not.
    pub fn refusal(&self, flag: Flag) -> Option<&'static str> {
        self.refuses
            .iter()
            .find(|(f, _)| *f == flag)
            .map(|(_, why)| *why)
    }
}

impl clap::ValueEnum for EngineDef {
    fn value_variants<'a>() -> &'a [Self] {
        ENGINES
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name))
    }
}

/// The `after_help` of `runtime configure`: each engine's files, then how
/// every file is edited.
pub fn files_help() -> String {
    let mut rows: Vec<&EngineDef> = ENGINES.iter().collect();
    rows.sort_by_key(|e| e.registration);
    let mut help = String::from("Files:\n");
    for e in rows {
        help.push_str(e.files_help);
    }
    help.push_str(
        "DIR is --hooks-dir, default /usr/share/containers/oci/hooks.d.
An edited file is first copied to FILE.bak (an existing FILE.bak is kept), then replaced
atomically, keeping its owner, group and mode; a file that does not parse is reported (with the
position) and left as it is. A runtime `amd` that is not amd-container-runtime is never replaced
or removed.",
    );
    help
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, e) in ENGINES.iter().enumerate() {
            assert!(
                ENGINES[i + 1..].iter().all(|o| o.name != e.name),
                "{} twice",
                e.name
            );
        }
    }
}
