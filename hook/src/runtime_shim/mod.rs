//! `amd-container-runtime`: the runc-compatible entry Docker runs. On
//! `create` / `run` of a container whose spec asks for GPUs it registers
//! `amd-container-hook` in `hooks.createRuntime` and, when the container's
//! process runs as a non-root user that could not open the nodes it asks for
//! (`[devices] user-access`), adds their host groups to
//! `process.user.additionalGids` (as `docker run --group-add` would; the
//! hook then finds nothing more to do for the user); then, for every
//! command, it execs the low-level runtime with the same arguments.
//!
//! Contract: a failure is a [`ShimError`] naming the file or value at fault
//! with its cause kept as the error's `source`; it is written to runc's
//! `--log` here and reported on stderr once, by the binary's `main`.

pub mod args;

use crate::container_spec::edit;
use crate::container_spec::view::{self, DocView};
use amd_container_common::access;
use amd_container_common::atomic_file::write_atomic;
use amd_container_common::config::Config;
use amd_container_common::request::{find_assignment, find_request, Request};
use amd_container_common::resolve::resolve;
use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// Why the shim did not exec the low-level runtime.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error(transparent)]
    Config(#[from] amd_container_common::config::ConfigError),
    #[error(transparent)]
    HookEnv(#[from] amd_container_common::config::HookEnvError),
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: not valid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: not a JSON object", path.display())]
    NotObject { path: PathBuf },
    #[error("cannot serialize the edited {}: {source}", path.display())]
    Serialize {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "cannot tell which bundle runc would use for {args:?}: {why}; refusing rather than \
         editing another bundle's config.json"
    )]
    Bundle { args: String, why: String },
    #[error("cannot run {runtime}: {source}")]
    Exec { runtime: String, source: io::Error },
}

/// Runs the shim. Returns only on error (success replaces the process).
pub fn main(args: &[OsString]) -> ShimError {
    let inv = args::parse(args);
    let error = run(args, &inv);
    log_error(&inv, &error);
    error
}

fn run(args: &[OsString], inv: &args::Invocation) -> ShimError {
    let config_path = Config::default_path();
    let config = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    if let Some(bundle) = &inv.bundle {
        let bundle = match bundle {
            args::Bundle::Cwd => PathBuf::from("."),
            args::Bundle::Path(p) => PathBuf::from(p),
            args::Bundle::Unclear(why) => {
                return ShimError::Bundle {
                    args: args
                        .iter()
                        .map(|a| a.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(" "),
                    why: why.clone(),
                }
            }
        };
        if let Err(e) = prepare(&bundle.join("config.json"), &config, &config_path) {
            return e;
        }
    }
    let runtime: &OsStr = match config.runtime.low_level_runtime.as_str() {
        "" => OsStr::new("runc"),
        r => OsStr::new(r),
    };
    // execvp: PATH lookup, same fds, same environment.
    let err = std::process::Command::new(runtime).args(args).exec();
    ShimError::Exec {
        runtime: runtime.to_string_lossy().into_owned(),
        source: err,
    }
}

/// Registers the hook in `config.json` if the container asks for GPUs; a
/// container that does not is left byte for byte as it was.
fn prepare(config_json: &Path, config: &Config, config_path: &Path) -> Result<(), ShimError> {
    let path = || config_json.to_path_buf();
    let bytes = std::fs::read(config_json).map_err(|source| ShimError::Read {
        path: path(),
        source,
    })?;
    let mut doc: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|source| ShimError::Json {
            path: path(),
            source,
        })?;
    if !view::requests_gpu(DocView(&doc).env().into_iter(), &config.hook.swarm_resource) {
        return Ok(());
    }
    // The hook must read the same config file as the runtime that registers
    // it (log file, Swarm variable), also when that is not the default one.
    let env = config.runtime.hook_env(config_path)?;
    let hook = edit::hook_entry(
        &config.runtime.hook_path.to_string_lossy(),
        config.runtime.hook_timeout,
        &env,
    );
    let gids = user_groups(&doc, config);
    let map = doc
        .as_object_mut()
        .ok_or_else(|| ShimError::NotObject { path: path() })?;
    let mut changed = edit::register(map, hook);
    // With the GPU tracker in use, the hook also releases the container's
    // GPUs when it is deleted.
    if config.gpu_tracker.state_file.exists() {
        let poststop = edit::stage_entry(
            "poststop",
            &config.runtime.hook_path.to_string_lossy(),
            config.runtime.hook_timeout,
            &env,
        );
        changed |= edit::register_at(map, "poststop", poststop);
    }
    changed |= edit::add_gids(&mut doc, &gids);
    if !changed {
        return Ok(());
    }
    let out = serde_json::to_vec(&doc).map_err(|source| ShimError::Serialize {
        path: path(),
        source,
    })?;
    write_atomic(config_json, &out).map_err(|source| ShimError::Write {
        path: path(),
        source,
    })
}

/// The host groups the spec's non-root process user needs for the nodes its
/// request resolves to (none for root, with `[devices] user-access = []`,
/// or when the request cannot be resolved: the hook then reports why).
fn user_groups(doc: &serde_json::Value, config: &Config) -> Vec<u32> {
    let user = DocView(doc).user();
    if user.uid == 0 || config.devices.user_access.is_empty() {
        return Vec::new();
    }
    let env = DocView(doc).env();
    let Some(var) = find_request(env.iter().copied(), &config.hook.swarm_resource) else {
        return Vec::new();
    };
    let Ok(request) = Request::parse(var.name, var.value) else {
        return Vec::new();
    };
    if !request.is_gpu() || request == Request::NoGpus {
        return Vec::new();
    }
    // Within the orchestrator's assignment, or the hook refuses it.
    let assignment = find_assignment(env.iter().copied(), &config.hook.swarm_resource);
    let Ok(resolved) = resolve(&request, &var, assignment.as_ref(), false) else {
        return Vec::new();
    };
    access::groups_to_add(
        &resolved.edits.device_nodes,
        &user,
        &config.devices.user_access,
    )
    .gids
}

/// Also puts the error into runc's `--log` file, where containerd's shim
/// looks for the reason a runtime failed (Docker shows it to the user).
fn log_error(inv: &args::Invocation, error: &ShimError) {
    let Some(log) = &inv.log else {
        return;
    };
    let msg = format!("amd-container-runtime: {error}");
    let time = amd_container_common::timestamp::rfc3339(std::time::SystemTime::now(), false);
    let line = if inv.log_format.as_deref() == Some(OsStr::new("json")) {
        let entry = serde_json::json!({"level": "error", "msg": msg, "time": time});
        format!("{entry}\n")
    } else {
        format!("time={time:?} level=error msg={msg:?}\n")
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
    {
        let _ = f.write_all(line.as_bytes());
    }
}
