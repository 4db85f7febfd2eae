//! What the runtime tells the hook: the OCI state on stdin and the bundle's
//! config.json, read as [`container_spec::view`](crate::container_spec::view)
//! reads it. The fast path reads only `process.env`.
//!
//! Contract: the state must name an absolute `bundle` (never the current
//! directory); config.json must be a regular file, opened without blocking
//! (a FIFO or a device is refused, not waited on) and at most
//! [`MAX_CONFIG_BYTES`] long; `root.path` is resolved against the bundle and
//! must be free of NUL bytes. Every refusal names the value and why.

use crate::container_spec::view::{EnvOnly, Spec};
use oci_spec::runtime::State;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("cannot read the container state from stdin: {0}")]
    State(#[source] serde_json::Error),
    /// The file is there but is not one the hook reads (its kind, its size).
    #[error("cannot read {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("cannot read {path}: {source}")]
    ConfigIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    ConfigJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the container state has no pid")]
    NoPid,
    #[error("the container state's bundle {0:?} is not an absolute path")]
    Bundle(PathBuf),
    #[error("the container's root.path {0:?} contains a NUL byte")]
    RootNul(PathBuf),
}

/// config.json larger than this is refused (real ones are a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Parses the state and checks that it names an absolute bundle.
pub fn read_state(input: &[u8]) -> Result<State, ContainerError> {
    let state: State = serde_json::from_slice(input).map_err(ContainerError::State)?;
    if !state.bundle().is_absolute() {
        return Err(ContainerError::Bundle(state.bundle().clone()));
    }
    Ok(state)
}

pub fn config_path(state: &State) -> PathBuf {
    state.bundle().join("config.json")
}

/// Reads config.json: a regular file only (opened non-blocking, so a FIFO
/// cannot stall the hook), at most [`MAX_CONFIG_BYTES`].
pub fn read_config_bytes(path: &Path) -> Result<Vec<u8>, ContainerError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |reason: String| ContainerError::Config {
        path: path.into(),
        reason,
    };
    let io_err = |source| ContainerError::ConfigIo {
        path: path.into(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.file_type().is_file() {
        return Err(err(format!(
            "not a regular file ({})",
            file_type_name(&meta.file_type())
        )));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(err(format!(
            "{} bytes, more than the {MAX_CONFIG_BYTES} accepted",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(err(format!(
            "more than the {MAX_CONFIG_BYTES} bytes accepted"
        )));
    }
    Ok(bytes)
}

fn file_type_name(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

pub fn parse_env_only(path: &Path, bytes: &[u8]) -> Result<EnvOnly, ContainerError> {
    serde_json::from_slice(bytes).map_err(|source| ContainerError::ConfigJson {
        path: path.into(),
        source,
    })
}

pub fn parse_spec(path: &Path, bytes: &[u8]) -> Result<Spec, ContainerError> {
    serde_json::from_slice(bytes).map_err(|source| ContainerError::ConfigJson {
        path: path.into(),
        source,
    })
}

/// The container's root as an absolute path (`root.path` may be relative to
/// the bundle).
pub fn rootfs(spec: &Spec, bundle: &Path) -> Result<PathBuf, ContainerError> {
    use std::os::unix::ffi::OsStrExt;
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_else(|| "rootfs".into());
    if root.as_os_str().as_bytes().contains(&0) {
        return Err(ContainerError::RootNul(root));
    }
    Ok(if root.is_absolute() {
        root
    } else {
        bundle.join(root)
    })
}

/// A state with status `stopped`: what `poststop` hooks get. Podman and
/// CRI-O run one hooks-JSON registration (whose argv names `prestart`) for
/// all of its stages, so the status tells the stage.
pub fn is_stopped(state: &State) -> bool {
    matches!(state.status(), oci_spec::runtime::ContainerState::Stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(bundle: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "ociVersion": "1.0.2", "id": "c", "status": "creating", "pid": 1, "bundle": bundle
        }))
        .unwrap()
    }

    #[test]
    fn state_needs_an_absolute_bundle() {
        assert!(read_state(&state("/b")).is_ok());
        for bad in ["", "b", "./b"] {
            let e = read_state(&state(bad)).unwrap_err();
            assert!(matches!(e, ContainerError::Bundle(_)), "{bad:?}: {e}");
        }
        let no_bundle = br#"{"ociVersion":"1.0.2","id":"c","status":"creating","pid":1}"#;
        assert!(read_state(no_bundle).is_err());
    }

    #[test]
    fn config_must_be_a_regular_file_and_a_fifo_does_not_block() {
        let d = std::env::temp_dir().join(format!("amd-hook-config-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let fifo = d.join("config.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = read_config_bytes(&fifo).unwrap_err().to_string();
        assert!(e.contains("a FIFO"), "{e}");
        let e = read_config_bytes(&d).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
        std::fs::remove_file(&fifo).unwrap();
        std::fs::write(&fifo, b"{}").unwrap();
        assert_eq!(read_config_bytes(&fifo).unwrap(), b"{}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn root_path_with_nul_is_an_error() {
        let spec: Spec =
            serde_json::from_str(r#"{"ociVersion": "1.0.2", "root": {"path": "root\u0000fs"}}"#)
                .unwrap();
        let e = rootfs(&spec, Path::new("/b")).unwrap_err();
        assert!(matches!(e, ContainerError::RootNul(_)), "{e}");
    }
}
