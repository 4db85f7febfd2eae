//! `amd-ctk package-removal` (hidden): what the packages run when they are
//! removed (deb `prerm remove`, rpm `%preun` with no version left), so that
//! no engine is left pointing at binaries that are gone.
//!
//! Contract: takes back only entries and files this toolkit writes, and only
//! when they are recognisably ours:
//! - Docker: `runtimes.amd` whose `path` names `amd-container-runtime`, and
//!   `"default-runtime": "amd"` with it, and `features.cdi` where amd-ctk's
//!   record says it set it and it still holds that `true` (through `runtime
//!   configure --remove`, so the same locked, atomic, backed-up edit, the
//!   record updated with it); a `runtimes.amd` pointing elsewhere, an
//!   admin's `features.cdi`, other runtimes and keys are left alone.
//! - Podman / CRI-O: our hooks JSON (either variant) in the default hooks
//!   directories and in those our CRI-O drop-in names, when its hook is
//!   `amd-container-hook`; then our CRI-O drop-in (recognised by its header).
//!
//! CDI specs, the config file and anything unparsable are never touched.
//! `--root DIR` prefixes every path (tests; `$AMD_CTK_DOCKER_CDI_STATE`
//! still names the record). Exit 1 when a step failed; the
//! other steps still run.

use super::runtime_configure::{self, ConfigureError};
use crate::cli_error::CliError;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const DOCKER_CONFIG: &str = "/etc/docker/daemon.json";
const HOOK_BINARY: &str = "amd-container-hook";
const HOOKS_DIRS: &[&str] = &[
    "/usr/share/containers/oci/hooks.d",
    "/etc/containers/oci/hooks.d",
];
const HOOKS_FILES: &[&str] = &[
    "amd-container-toolkit.json",
    "amd-container-toolkit-precreate.json",
];
const CRIO_DROP_IN: &str = "/etc/crio/crio.conf.d/99-amd-container-toolkit.conf";
/// The first line of the drop-in `runtime configure --runtime crio` writes.
const CRIO_DROP_IN_HEADER: &str = "# Written by `amd-ctk runtime configure --runtime crio`";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Prefix for every path (tests).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
enum RemovalError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot delete {path}: {source}")]
    Delete {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Configure(#[from] ConfigureError),
}

fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, RemovalError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RemovalError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn names_binary(path: Option<&str>, binary: &str) -> bool {
    path.is_some_and(|p| Path::new(p).file_name().is_some_and(|n| n == binary))
}

/// daemon.json: `runtimes.amd` when it runs our runtime, `default-runtime`
/// with it, and `features.cdi` when the record says amd-ctk set it.
fn docker(root: &Path) -> Result<(), RemovalError> {
    let path = under(root, DOCKER_CONFIG);
    let Some(bytes) = read_if_exists(&path)? else {
        return Ok(());
    };
    if serde_json::from_slice::<Value>(&bytes).is_err() {
        println!("{}: not JSON; left as it is", path.display());
        return Ok(());
    }
    runtime_configure::remove_docker_entry(&path, root)?;
    Ok(())
}

/// Is this hooks JSON one of ours (its hook runs amd-container-hook)?
fn our_hook_json(bytes: &[u8]) -> bool {
    let Ok(doc) = serde_json::from_slice::<Value>(bytes) else {
        return false;
    };
    let hook = &doc["hook"];
    names_binary(hook["path"].as_str(), HOOK_BINARY)
        && hook["args"].get(0).and_then(Value::as_str) == Some(HOOK_BINARY)
}

/// The directories of our CRI-O drop-in's `hooks_dir`, if the drop-in is ours.
fn crio_drop_in(root: &Path) -> Result<Option<(PathBuf, Vec<String>)>, RemovalError> {
    let path = under(root, CRIO_DROP_IN);
    let Some(bytes) = read_if_exists(&path)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    if !text.starts_with(CRIO_DROP_IN_HEADER) {
        println!("{}: not written by amd-ctk; left as it is", path.display());
        return Ok(None);
    }
    let dirs = text
        .parse::<toml_edit::DocumentMut>()
        .ok()
        .and_then(|doc| {
            let list = doc.get("crio")?.get("runtime")?.get("hooks_dir")?;
            Some(
                list.as_array()?
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            )
        })
        .unwrap_or_default();
    Ok(Some((path, dirs)))
}

fn delete(path: &Path) -> Result<(), RemovalError> {
    std::fs::remove_file(path).map_err(|source| RemovalError::Delete {
        path: path.to_path_buf(),
        source,
    })?;
    println!("{}: removed", path.display());
    Ok(())
}

fn hooks(root: &Path) -> Result<(), RemovalError> {
    let drop_in = crio_drop_in(root)?;
    let mut dirs: Vec<PathBuf> = HOOKS_DIRS.iter().map(|d| under(root, d)).collect();
    if let Some((_, listed)) = &drop_in {
        for d in listed {
            let d = under(root, d);
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    let mut first_error = None;
    for dir in &dirs {
        for name in HOOKS_FILES {
            let path = dir.join(name);
            let result = match read_if_exists(&path) {
                Ok(Some(bytes)) if our_hook_json(&bytes) => delete(&path),
                Ok(Some(_)) => {
                    println!(
                        "{}: its hook is not {HOOK_BINARY}; left as it is",
                        path.display()
                    );
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                eprintln!("amd-ctk: {e}");
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some((path, _)) = drop_in {
        delete(&path)?;
        println!("To apply: systemctl restart crio");
    }
    first_error.map_or(Ok(()), Err)
}

pub fn run(args: &Args) -> Result<ExitCode, CliError> {
    let mut failed = false;
    for (what, result) in [("docker", docker(&args.root)), ("hooks", hooks(&args.root))] {
        if let Err(e) = result {
            eprintln!("amd-ctk: package removal ({what}): {e}");
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_our_hooks_json_only() {
        let ours = include_bytes!("../../../oci-hooks.d/amd-container-toolkit.json");
        assert!(our_hook_json(ours));
        let pre = include_bytes!("../../../oci-hooks.d/amd-container-toolkit-precreate.json");
        assert!(our_hook_json(pre));
        let moved = br#"{"hook": {"path": "/opt/amd/bin/amd-container-hook", "args": ["amd-container-hook", "prestart"]}}"#;
        assert!(our_hook_json(moved));
        let other = br#"{"hook": {"path": "/usr/bin/other-hook", "args": ["other-hook"]}}"#;
        assert!(!our_hook_json(other));
        assert!(!our_hook_json(b"not json"));
    }
}
