//! Podman and CRI-O: our OCI hook registration (hooks schema 1.0.0) in a
//! hooks directory. The JSON ships in the repo's oci-hooks.d/ and is embedded
//! here; only the hook path can differ.

use super::file_edit::Change;
use super::ConfigureError;
use serde_json::Value;

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
