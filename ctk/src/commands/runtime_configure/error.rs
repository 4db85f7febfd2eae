//! Why `runtime configure` did not do what it was asked: one enum for the
//! command ([`ConfigureError`]), each variant naming the file or option at
//! fault and keeping the cause, and the refusals of one file's edit
//! ([`EditError`], file_edit's guarantees) it wraps. Reported once, by `main`.
//!
//! Contract: a [`ConfigureError`] means nothing was changed by the step that
//! failed, and (through the engine runner's undo) nothing by the run.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    /// An option that means nothing for the chosen engine.
    #[error("{flag} does not apply to --runtime {engine}: {why}")]
    NotForEngine {
        flag: &'static str,
        engine: &'static str,
        why: &'static str,
    },
    #[error(
        "--hook-path {}: must be an absolute path (OCI hooks have no PATH lookup)",
        .0.display()
    )]
    RelativeHookPath(PathBuf),
    #[error("--hooks-dir {}: {source}", path.display())]
    HooksDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not UTF-8 (byte {byte})", path.display())]
    NotUtf8 { path: PathBuf, byte: usize },
    #[error("{}: not valid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: not valid TOML: {source}", path.display())]
    Toml {
        path: PathBuf,
        source: toml_edit::TomlError,
    },
    /// A key that holds something other than what the engine reads there.
    #[error("{}: {at} is not {expected}", path.display())]
    Shape {
        path: PathBuf,
        at: String,
        expected: &'static str,
    },
    #[error("{}: cannot serialize: {source}", path.display())]
    Serialize {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{}: config version {found} is not supported (1, 2 and 3 are)",
        path.display()
    )]
    Version { path: PathBuf, found: String },
    /// An admin's CRI-O drop-in: editing it would leave a backup CRI-O reads.
    #[error(
        "{}: not written by amd-ctk; left as it is. CRI-O reads every file in {}, so amd-ctk \
         does not edit other drop-ins there (its backup would be read too): use --config \
         {}/99-amd-container-toolkit.conf, or add {dir:?} to hooks_dir of this file by hand",
        path.display(),
        drop_in_dir.display(),
        drop_in_dir.display()
    )]
    ForeignDropIn {
        path: PathBuf,
        drop_in_dir: PathBuf,
        dir: String,
    },
    /// The record of Docker's features.cdi (docker_cdi) is not one amd-ctk wrote.
    #[error(
        "{}: not a record amd-ctk wrote ({source}); nothing changed. It tells which \
         daemon.json files amd-ctk turned features.cdi on in: move it away to start afresh \
         (--remove then leaves every features.cdi alone)",
        path.display()
    )]
    Record {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{}: record version {found}; this amd-ctk knows version 1. Nothing changed",
        path.display()
    )]
    RecordVersion { path: PathBuf, found: u32 },
    #[error(transparent)]
    Edit(#[from] EditError),
}

impl ConfigureError {
    /// The file is not UTF-8: where the first bad byte is.
    pub fn not_utf8(path: &std::path::Path, e: std::str::Utf8Error) -> ConfigureError {
        ConfigureError::NotUtf8 {
            path: path.to_path_buf(),
            byte: e.valid_up_to(),
        }
    }

    /// `at` in `path` is not `expected` ("a table", "a list", "a JSON object").
    pub fn shape(path: &std::path::Path, at: &str, expected: &'static str) -> ConfigureError {
        ConfigureError::Shape {
            path: path.to_path_buf(),
            at: at.to_string(),
            expected,
        }
    }
}

/// Why a file was not edited. Each names the file and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error(
        "{}: a symlink to {} that cannot be followed ({reason}); not replaced by a regular file: \
         create the target or point the link elsewhere, then run again",
        link.display(),
        target.display()
    )]
    DanglingSymlink {
        link: PathBuf,
        target: PathBuf,
        reason: std::io::Error,
    },
    #[error(
        "{}: {what} (chattr +{flag}); not changed and no backup made: `chattr -{flag} {}` to allow it",
        path.display(),
        path.display()
    )]
    Protected {
        path: PathBuf,
        what: &'static str,
        flag: char,
    },
    #[error("{}: on a read-only mount; not changed and no backup made", path.display())]
    ReadOnlyMount { path: PathBuf },
    #[error(
        "{}: a mount point (a bind-mounted file) cannot be replaced; not changed and no backup \
         made: edit the source of the mount (see findmnt {})",
        path.display(),
        path.display()
    )]
    MountPoint { path: PathBuf },
    #[error(
        "cannot lock {} within {secs}s: {holder} holds it (another amd-ctk, stopped or hung?); \
         try again once it is gone",
        dir.display()
    )]
    LockTimeout {
        dir: PathBuf,
        holder: String,
        secs: f64,
    },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// An entry with our name that we did not write (another vendor's
    /// runtime called `amd`, say): never replaced or removed.
    #[error("{}: {entry} is not ours ({found}); left as it is. {hint}", file.display())]
    NotOurs {
        file: PathBuf,
        entry: String,
        found: String,
        hint: String,
    },
}
