//! Why a tracker operation failed: each variant names the file, the GPUs or
//! the containers involved, and what to run about it.

use std::path::PathBuf;
use std::time::Duration;

/// How long an operation waits for the lock (upstream: 10 s).
pub(super) const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("GPU tracker: cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("GPU tracker: {path} is not tracker state: {source}; run `amd-ctk gpu-tracker reset`")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("GPU tracker: {} is held by another process for more than {}s", crate::flock::lock_file(path).display(), LOCK_TIMEOUT.as_secs())]
    LockTimeout { path: PathBuf },
    #[error(
        "GPU tracker: the GPUs changed since its state was made ({detail}); stop the GPU \
         containers and run `amd-ctk gpu-tracker reset` (GPU info mismatch)"
    )]
    Mismatch { detail: String },
    #[error("GPU tracker is disabled: run `amd-ctk gpu-tracker enable` first")]
    Disabled,
    #[error("{0}")]
    InUse(String),
    #[error(
        "GPUs [{}] have not been made exclusive because more than one container is currently \
         using them ({}); nothing was changed",
        .gpus.iter().map(|(i, _)| i.to_string()).collect::<Vec<_>>().join(" "),
        .gpus.iter().map(|(i, h)| format!("GPU {i}: {}", h.join(", "))).collect::<Vec<_>>().join("; ")
    )]
    SharedByMany { gpus: Vec<(usize, Vec<String>)> },
}
