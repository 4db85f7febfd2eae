//! Podman and CRI-O: our OCI hook registration (hooks schema 1.0.0) in a
//! hooks directory. The JSON ships in the repo's oci-hooks.d/ and is embedded
//! here; only the hook path can differ. [`hooks_edits`] are the files both
//! engines (podman.rs, crio/) edit there: one variant installed, the other
//! removed.

use super::engine::{EditReport, FileEdit, Plan};
use super::error::ConfigureError;
use super::file_edit::Change;
use serde_json::Value;
use std::path::Path;

pub const DEFAULT_DIR: &str = "/usr/share/containers/oci/hooks.d";
pub const DEFAULT_HOOK_PATH: &str = "/usr/bin/amd-container-hook";

/// Which registration: the live hook (`prestart`, run as `createRuntime` by
/// Podman 5) or Podman's `precreate` spec filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Prestart,
    Precreate,
}

impl Variant {
    pub fn file_name(self) -> &'static str {
        match self {
            Variant::Prestart => "amd-container-toolkit.json",
            Variant::Precreate => "amd-container-toolkit-precreate.json",
        }
    }

    fn embedded(self) -> &'static str {
        match self {
            Variant::Prestart => {
                include_str!("../../../../oci-hooks.d/amd-container-toolkit.json")
            }
            Variant::Precreate => {
                include_str!("../../../../oci-hooks.d/amd-container-toolkit-precreate.json")
            }
        }
    }

    pub fn other(self) -> Variant {
        match self {
            Variant::Prestart => Variant::Precreate,
            Variant::Precreate => Variant::Prestart,
        }
    }
}

/// The registration file's bytes with `hook.path` = `hook_path`. With the
/// default path they are the shipped file byte for byte.
pub fn content(variant: Variant, hook_path: &str) -> Result<Vec<u8>, ConfigureError> {
    let shipped = || std::path::PathBuf::from(format!("oci-hooks.d/{}", variant.file_name()));
    let mut doc: Value =
        serde_json::from_str(variant.embedded()).map_err(|source| ConfigureError::Json {
            path: shipped(),
            source,
        })?;
    doc["hook"]["path"] = Value::from(hook_path);
    let mut out = serde_json::to_vec_pretty(&doc).map_err(|source| ConfigureError::Serialize {
        path: shipped(),
        source,
    })?;
    out.push(b'\n');
    Ok(out)
}

/// Install: write `want` unless the file holds exactly that.
pub fn plan_install(current: Option<&[u8]>, want: &[u8]) -> Result<(Change, ()), ConfigureError> {
    Ok(if current == Some(want) {
        (Change::Unchanged, ())
    } else {
        (Change::Write(want.to_vec()), ())
    })
}

pub fn plan_remove(current: Option<&[u8]>) -> Result<(Change, ()), ConfigureError> {
    Ok(match current {
        None => (Change::Unchanged, ()),
        Some(_) => (Change::Delete, ()),
    })
}

/// Our hooks files in `dir`: `variant` installed and the other removed, or
/// with `remove` both removed. The files of Podman and CRI-O.
pub fn hooks_edits<'a>(
    dir: &Path,
    variant: Variant,
    hook_path: &Path,
    remove: bool,
) -> Result<Vec<FileEdit<'a>>, ConfigureError> {
    let remove_plan = || -> Plan<'a> {
        Box::new(|cur| plan_remove(cur).map(|(c, ())| (c, EditReport::default())))
    };
    let other = FileEdit {
        path: dir.join(variant.other().file_name()),
        backup: false,
        private: false,
        quiet_unchanged: true,
        plan: remove_plan(),
    };
    let own = FileEdit {
        path: dir.join(variant.file_name()),
        backup: false,
        private: false,
        quiet_unchanged: false,
        plan: if remove {
            remove_plan()
        } else {
            let want = content(variant, &hook_path.to_string_lossy())?;
            Box::new(move |cur| plan_install(cur, &want).map(|(c, ())| (c, EditReport::default())))
        },
    };
    Ok(vec![own, other])
}

/// The note for a hook binary that is not there (yet).
pub fn missing_hook_note(hook_path: &Path, remove: bool) -> Option<String> {
    (!remove && !hook_path.exists()).then(|| {
        format!(
            "note: {} does not exist (yet); the engine refuses a hook whose binary is missing",
            hook_path.display()
        )
    })
}

pub fn is_default_hooks_dir(dir: &Path) -> bool {
    dir.components().eq(Path::new(DEFAULT_DIR).components())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_content_is_the_shipped_file() {
        for v in [Variant::Prestart, Variant::Precreate] {
            assert_eq!(
                content(v, DEFAULT_HOOK_PATH).unwrap(),
                v.embedded().as_bytes(),
                "{v:?}"
            );
        }
    }

    #[test]
    fn shipped_files_follow_the_schema_we_promise() {
        // The live hook also runs at poststop: the GPU tracker's release.
        for (v, stage, stages) in [
            (
                Variant::Prestart,
                "prestart",
                json!(["prestart", "poststop"]),
            ),
            (Variant::Precreate, "precreate", json!(["precreate"])),
        ] {
            let doc: Value =
                serde_json::from_slice(&content(v, "/opt/x/amd-container-hook").unwrap()).unwrap();
            assert_eq!(
                doc,
                json!({
                    "version": "1.0.0",
                    "hook": {
                        "path": "/opt/x/amd-container-hook",
                        "args": ["amd-container-hook", stage],
                        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
                    },
                    "when": {"always": true},
                    "stages": stages
                })
            );
        }
    }
}
